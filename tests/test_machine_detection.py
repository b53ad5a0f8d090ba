"""transfer.machine_detection: a staff phone's voicemail is not "a person picked up"; the caller may leave a message.

Bodies are checked against Telnyx's schemas (TransferCallRequest, HangupRequest); the webhook fixture
`transfer_leg_machine_detection_ended.json` against CallMachineDetectionEnded (tests/test_fixtures_and_spec.py).
"""

from __future__ import annotations

import pytest
from test_receptionist import CALL, LEG, deliver, on_the_leg, speak_ended

from calls import Phase
from config import build_settings
from events import transfer_client_state
from fakes import ManualScheduler
from receptionist import Receptionist
from spec import validate_request
from store_setup import with_own_store

pytestmark = pytest.mark.both_stores


@pytest.fixture
def make(raw_config, store_env, telnyx, scripted_brain):
    made = []

    def build(machine_detection: bool) -> Receptionist:
        raw_config["webhook"]["verify_signatures"] = False
        raw_config["transfer"]["machine_detection"] = machine_detection
        settings = with_own_store(build_settings(raw_config, store_env))
        made.append(Receptionist(settings, telnyx, scripted_brain, scheduler=ManualScheduler()))
        return made[-1]

    yield build
    for receptionist in made:
        receptionist.shutdown()


def transferring(receptionist: Receptionist) -> None:
    """Greeted, the caller pressed 0, the announcement was heard: the transfer is ringing."""
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_dtmf_received", speak_ended(2))


def detection(result: str):
    return on_the_leg("transfer_leg_machine_detection_ended", result=result)


def test_the_transfer_asks_for_detection_and_to_keep_the_caller_when_the_leg_ends(make, telnyx):
    receptionist = make(machine_detection=True)
    transferring(receptionist)
    (transfer,) = [c for c in telnyx.commands if c.action == "transfer"]
    assert transfer.body["answering_machine_detection"] == "detect"
    assert transfer.body["park_after_unbridge"] == "self"
    assert transfer.body["target_leg_client_state"] == transfer_client_state(CALL)
    validate_request("transfer", transfer.body)


def test_without_it_the_transfer_body_has_neither_field(make, telnyx):
    transferring(make(machine_detection=False))
    (transfer,) = [c for c in telnyx.commands if c.action == "transfer"]
    assert "answering_machine_detection" not in transfer.body and "park_after_unbridge" not in transfer.body


def test_a_voicemail_is_hung_up_and_the_caller_is_offered_to_leave_a_message(make, telnyx, raw_config):
    receptionist = make(machine_detection=True)
    transferring(receptionist)
    deliver(receptionist, on_the_leg("transfer_leg_answered"), on_the_leg("transfer_leg_bridged"))
    assert receptionist.calls.get(CALL).phase is Phase.TRANSFERRING  # answered, but by whom?
    assert "transcription_stop" not in telnyx.actions()
    before = len(telnyx.commands)
    deliver(receptionist, detection("machine"))
    hangup, speak = telnyx.commands[before:]
    assert (hangup.action, hangup.call_control_id) == ("hangup", LEG)
    validate_request("hangup", hangup.body)
    assert (speak.action, speak.call_control_id) == ("speak", CALL)
    assert speak.body["payload"] == raw_config["assistant"]["no_human_available"]
    state = receptionist.calls.get(CALL)
    assert state.phase is Phase.TAKING_MESSAGE and state.escalation_reason == "caller pressed 0"
    deliver(receptionist, on_the_leg("transfer_leg_hangup_no_answer"))  # the leg we hung up: nothing more
    assert len(telnyx.commands) == before + 2


@pytest.mark.parametrize("result", ["human", "not_sure"])
def test_a_person_or_a_doubt_connects_the_call(make, telnyx, result):
    receptionist = make(machine_detection=True)
    transferring(receptionist)
    deliver(receptionist, on_the_leg("transfer_leg_answered"), detection(result))
    state = receptionist.calls.get(CALL)
    assert state.phase is Phase.BRIDGED and state.outcome == "transferred"
    assert telnyx.actions()[-1] == "transcription_stop" and "hangup" not in telnyx.actions()


def test_after_the_person_hangs_up_the_parked_caller_is_hung_up(make, telnyx):
    receptionist = make(machine_detection=True)
    transferring(receptionist)
    deliver(receptionist, on_the_leg("transfer_leg_answered"), detection("human"), on_the_leg("call_hangup"))
    assert "hangup" not in telnyx.actions()  # the caller's own hangup may be on its way: wait for it
    receptionist.scheduler.fire_all()
    receptionist.queues.wait_idle(5)
    assert [(c.action, c.call_control_id) for c in telnyx.commands][-1] == ("hangup", CALL)


def test_when_the_caller_hung_up_first_nothing_is_sent(make, telnyx):
    receptionist = make(machine_detection=True)
    transferring(receptionist)
    deliver(receptionist, on_the_leg("transfer_leg_answered"), detection("human"), on_the_leg("call_hangup"),
            "call_hangup")
    receptionist.scheduler.fire_all()
    receptionist.queues.wait_idle(5)
    assert "hangup" not in telnyx.actions()


def test_without_detection_an_answer_is_a_person(make, telnyx):
    receptionist = make(machine_detection=False)
    transferring(receptionist)
    deliver(receptionist, on_the_leg("transfer_leg_answered"))
    assert receptionist.calls.get(CALL).phase is Phase.BRIDGED
    deliver(receptionist, detection("machine"))  # detection not asked for: a stray result changes nothing
    assert receptionist.calls.get(CALL).phase is Phase.BRIDGED and "hangup" not in telnyx.actions()
