"""receptionist.py: intake and routing of events to calls, the one loop of dialog and runners, shutdown,
and adopting calls whose state was lost."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import pytest

from brains import BrainReply
from calls import Phase
from events import CallEvent, CallExpired, parse_event, speech_client_state, transfer_client_state
from fakes import ManualScheduler, RecordingTelnyx, ScriptedBrain
from fixtures import encode, load_fixture, with_ids
from receptionist import STATE_LOST, Receptionist, ServiceStopping
from spec import validate_request
from store_setup import with_own_store
from telnyx_client import TelnyxHTTPError, command_id_for

pytestmark = pytest.mark.both_stores

CALL = load_fixture("call_initiated")["data"]["payload"]["call_control_id"]
LEG = load_fixture("transfer_leg_answered")["data"]["payload"]["call_control_id"]


def webhook(name: str, **ids) -> CallEvent:
    """A fixture as the route hands it over; with `ids`, a fresh event id and the ids given."""
    body = with_ids(load_fixture(name), **ids) if ids else load_fixture(name)
    return parse_event(encode(body))


def event_id(name: str) -> str:
    return load_fixture(name)["data"]["id"]


def fresh(name: str, call_control_id: str = CALL, client_state: str | None = None, **payload) -> CallEvent:
    """A fixture as a new webhook (its own id) of `call_control_id`, with client_state and payload fields given."""
    body = with_ids(load_fixture(name), event_id=str(uuid.uuid4()), call_control_id=call_control_id,
                    client_state=client_state)
    body["data"]["payload"].update(payload)
    return parse_event(encode(body))


def speak_ended(tag: int | None) -> CallEvent:
    """The end of speech number `tag` as Telnyx reports it: client_state echoed (None: a speak.ended without one)."""
    return fresh("call_speak_ended", client_state=speech_client_state(tag) if tag is not None else None)


def deliver(receptionist: Receptionist, *events: CallEvent | str) -> None:
    """Accept each event (a fixture name or a CallEvent) and wait until its call's work is done."""
    for event in events:
        receptionist.accept(webhook(event) if isinstance(event, str) else event)
        assert receptionist.queues.wait_idle(5), receptionist.stats()


def on_the_leg(name: str, **payload) -> CallEvent:
    """A webhook of the transfer leg: the leg's own call_control_id, tagged with the call it came from."""
    return fresh(name, LEG, transfer_client_state(CALL), **payload)


LEG_EVENTS = {
    "star two (a feature code)": ("call_dtmf_received", {"digit": "*"}),
    "two": ("call_dtmf_received", {"digit": "2"}),
    "zero": ("call_dtmf_received", {"digit": "0"}),
    "speech": ("call_transcription", {"transcription_data": {"transcript": "operator", "confidence": 0.97,
                                                             "is_final": True}}),
    "speak ended": ("call_speak_ended", {}),
    "answered": ("call_answered", {}),
    "hangup": ("call_hangup", {}),
}


def leg_events() -> list[CallEvent]:
    return [on_the_leg(name, **payload) for name, payload in LEG_EVENTS.values()]


def bridged(receptionist: Receptionist, telnyx) -> None:
    """Greeted, the caller pressed 0, the announcement was heard, the person picked up."""
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_dtmf_received", speak_ended(2),
            "transfer_leg_answered")
    assert telnyx.actions() == ["answer", "speak", "transcription_start", "speak", "transfer", "transcription_stop"]
    assert receptionist.calls.get(CALL).phase is Phase.BRIDGED


@pytest.fixture
def make_receptionist(settings):
    """Receptionists on the example config with a ManualScheduler; all shut down after the test."""
    made = []

    def make(telnyx, brain) -> Receptionist:
        made.append(Receptionist(with_own_store(settings), telnyx, brain, scheduler=ManualScheduler()))
        return made[-1]

    yield make
    for receptionist in made:
        receptionist.shutdown()


@pytest.fixture
def receptionist(make_receptionist, telnyx, scripted_brain) -> Receptionist:
    return make_receptionist(telnyx, scripted_brain)


class BlockingBrain(ScriptedBrain):
    """A brain that holds every question until `release` is set."""

    def __init__(self):
        super().__init__()
        self.asked, self.release = threading.Event(), threading.Event()

    def reply(self, history, utterance):
        self.asked.set()
        self.release.wait(5)
        return super().reply(history, utterance)


# ---------------------------------------------------------------- the one loop


def test_a_failed_speak_goes_back_to_the_dialog_once_and_the_call_carries_on(
    receptionist, telnyx, scripted_brain, settings
):
    telnyx.failures["speak"] = TelnyxHTTPError(500, "10007", "unexpected")
    deliver(receptionist, "call_initiated", "call_answered")
    state = receptionist.calls.get(CALL)
    assert telnyx.actions() == ["answer", "transcription_start"]
    # the greeting's CommandFailed ended its speech once: listening, one silence timer
    assert (state.speaking, state.silence_token) == (0, 1)
    assert receptionist.scheduler.delays().count(settings.dialog.silence_timeout_s) == 1
    del telnyx.failures["speak"]
    scripted_brain.enqueue(BrainReply("We open at 8.", "continue", 0.9))
    deliver(receptionist, "call_transcription")
    assert telnyx.spoken() == ["We open at 8."]


def test_follow_up_command_ids_derive_from_the_command_that_caused_them(receptionist, telnyx):
    deliver(receptionist, "call_initiated", "call_answered", "call_speak_ended", "call_transcription")
    answer, reply = telnyx.commands[0], telnyx.commands[-1]
    assert answer.body["command_id"] == command_id_for(CALL, event_id("call_initiated"), "Answer", "0")
    ask_brain = command_id_for(CALL, event_id("call_transcription"), "AskBrain", "0")
    assert (reply.action, reply.body["command_id"]) == ("speak", command_id_for(CALL, ask_brain, "Speak", "0"))


def test_the_same_events_give_the_same_command_ids(make_receptionist):
    def command_ids() -> list[tuple[str, str]]:
        telnyx = RecordingTelnyx()
        receptionist = make_receptionist(telnyx, ScriptedBrain())
        deliver(receptionist, "call_initiated", "call_answered", "call_speak_ended")
        receptionist.scheduler.fire_all()  # the silence timer: its ids derive from the timer
        deliver(receptionist, "call_transcription")
        return [(command.action, command.body["command_id"]) for command in telnyx.commands]

    first = command_ids()
    assert first == command_ids()
    assert [action for action, _ in first] == [
        "answer", "speak", "transcription_start", "speak", "playback_stop", "speak",  # reprompt, barge-in, reply
    ]
    assert len({command_id for _, command_id in first}) == len(first)


# ---------------------------------------------------------------- routing


def test_transfer_leg_events_reach_the_call_they_were_transferred_from(receptionist, telnyx):
    deliver(receptionist, "call_initiated", "call_answered", "call_speak_ended", "call_dtmf_received",
            webhook("call_speak_ended", event_id="speak-ended-2"), "transfer_leg_answered")
    assert telnyx.actions()[-2:] == ["transfer", "transcription_stop"]
    assert telnyx.actions(LEG) == [] and receptionist.calls.get(LEG) is None
    assert receptionist.calls.get(CALL).outcome == "transferred"


def test_a_leg_whose_call_is_not_live_is_not_a_call_of_its_own(receptionist, telnyx):
    deliver(receptionist, "transfer_leg_initiated", "transfer_leg_answered")
    assert telnyx.commands == []
    assert receptionist.stats()["live_calls"] == 0


def test_after_a_restart_nothing_on_a_transfer_leg_starts_a_dialog_or_a_rescue(receptionist, telnyx, caplog):
    """The process holds no state for the call the leg came from: the staff member's key presses (a PBX
    feature code), their words or their hangup must not play them the fallback line or transfer them."""
    with caplog.at_level(logging.INFO, logger="receptionist"):
        deliver(receptionist, *leg_events())
    assert telnyx.commands == []
    assert receptionist.stats()["live_calls"] == 0
    assert not receptionist.calls.known(LEG) and not receptionist.calls.known(CALL)
    assert f"call={LEG} event=call.dtmf.received on a transfer leg whose call is not live here" in caplog.text
    assert STATE_LOST not in caplog.text


def test_nothing_on_the_transfer_leg_disturbs_a_bridged_call(receptionist, telnyx):
    bridged(receptionist, telnyx)
    sent = len(telnyx.commands)
    deliver(receptionist, *leg_events()[:-1])  # all but its hangup
    assert len(telnyx.commands) == sent and telnyx.actions(LEG) == []
    state = receptionist.calls.get(CALL)
    assert (state.phase, state.outcome) == (Phase.BRIDGED, "transferred")


def test_after_the_caller_hung_up_the_transfer_leg_s_late_events_are_ignored(receptionist, telnyx):
    bridged(receptionist, telnyx)
    sent = len(telnyx.commands)
    deliver(receptionist, "call_hangup", *leg_events())
    assert len(telnyx.commands) == sent
    assert receptionist.calls.has_ended(CALL) and not receptionist.calls.known(LEG)


def test_a_bridged_call_past_max_call_age_is_left_alone(receptionist, telnyx, settings):
    bridged(receptionist, telnyx)
    sent = len(telnyx.commands)
    assert receptionist.store.accept("expiry-of-the-call", CALL, CallExpired())
    assert receptionist.queues.wait_idle(5)
    assert len(telnyx.commands) == sent, "expiry sends nothing: the caller is talking to a person"
    assert receptionist.calls.has_ended(CALL)
    (line,) = Path(settings.call_log.path).read_text().splitlines()
    assert (json.loads(line)["outcome"], json.loads(line)["transferred_to"]) == ("transferred", "front_desk")
    deliver(receptionist, *leg_events(), fresh("call_dtmf_received", digit="*"),
            fresh("call_transcription", transcription_data={"transcript": "hello?", "is_final": True}))
    assert len(telnyx.commands) == sent


def test_a_hangup_before_call_initiated_leaves_a_tombstone(receptionist, telnyx):
    deliver(receptionist, "call_hangup", "call_initiated")
    assert telnyx.commands == []
    assert receptionist.calls.has_ended(CALL) and receptionist.stats()["live_calls"] == 0


def test_every_speak_carries_its_number_as_client_state(receptionist, telnyx, scripted_brain):
    scripted_brain.enqueue(BrainReply("We open at 8.", "continue", 0.9))
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_transcription")
    speaks = [command.body for command in telnyx.commands if command.action == "speak"]
    assert [(body["payload"], body["client_state"]) for body in speaks] == [
        (receptionist.policy.lines["greeting"], speech_client_state(1)), ("We open at 8.", speech_client_state(2)),
    ]
    for body in speaks:
        validate_request("speak", body)


@pytest.mark.parametrize("stray", [None, 1, 7], ids=["without client_state", "the greeting's again", "never spoken"])
def test_a_stray_speak_ended_neither_transfers_nor_hangs_up_before_the_speech_is_heard(
    receptionist, telnyx, scripted_brain, stray
):
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_dtmf_received", speak_ended(stray))
    assert telnyx.actions()[-1] == "speak" and "transfer" not in telnyx.actions()
    deliver(receptionist, speak_ended(2))
    assert telnyx.actions()[-1] == "transfer"


@pytest.mark.parametrize("stray", [None, 1, 7], ids=["without client_state", "the greeting's again", "never spoken"])
def test_a_stray_speak_ended_does_not_hang_up_in_the_middle_of_the_goodbye(receptionist, telnyx, scripted_brain, stray):
    scripted_brain.enqueue(BrainReply("You're welcome.", "end", 0.9))
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_transcription", speak_ended(stray))
    assert telnyx.spoken()[-1].startswith("You're welcome.") and "hangup" not in telnyx.actions()
    deliver(receptionist, speak_ended(2))
    assert telnyx.actions()[-1] == "hangup"


def test_call_answered_before_call_initiated_greets_the_caller(receptionist, telnyx, settings):
    deliver(receptionist, "call_answered")
    assert telnyx.commands == [] and receptionist.calls.get(CALL).answered
    deliver(receptionist, "call_initiated")
    assert telnyx.actions() == ["speak", "transcription_start"]  # answered already: no second answer
    assert telnyx.spoken() == [settings.assistant.greeting]
    deliver(receptionist, speak_ended(1))
    assert receptionist.scheduler.delays().count(settings.dialog.silence_timeout_s) == 1


def test_two_call_initiated_under_different_ids_answer_once(receptionist, telnyx):
    deliver(receptionist, "call_initiated", webhook("call_initiated", event_id="initiated-again"))
    deliver(receptionist, "call_answered", webhook("call_answered", event_id="answered-again"))
    assert telnyx.actions() == ["answer", "speak", "transcription_start"]
    assert len({command.body["command_id"] for command in telnyx.commands}) == 3


def test_a_call_known_only_from_its_call_answered_is_rescued_when_the_caller_speaks(receptionist, telnyx, settings):
    """Its call.initiated was answered by a process that died: the caller pressing a key is handed to a person."""
    deliver(receptionist, "call_answered", "call_dtmf_received")
    assert telnyx.spoken() == [settings.assistant.fallback]
    assert receptionist.calls.get(CALL).escalation_reason == f"brain failed: {STATE_LOST}"
    deliver(receptionist, "call_initiated", speak_ended(1))
    assert telnyx.actions() == ["speak", "transfer"]


def test_a_redelivered_event_is_dropped(receptionist, telnyx):
    assert receptionist.accept(webhook("call_initiated")) is True
    assert receptionist.accept(webhook("call_initiated")) is False
    assert receptionist.queues.wait_idle(5)
    assert telnyx.actions() == ["answer"]


# ---------------------------------------------------------------- calls this process lost


def test_an_orphaned_transcription_is_adopted_with_the_fallback_then_a_transfer(receptionist, telnyx, settings):
    deliver(receptionist, "call_transcription")
    assert telnyx.spoken() == [settings.assistant.fallback]
    assert receptionist.calls.get(CALL).escalation_reason == f"brain failed: {STATE_LOST}"
    deliver(receptionist, "call_speak_ended")
    assert telnyx.commands[-1].action == "transfer"
    assert telnyx.commands[-1].body["to"] == settings.destinations[settings.transfer.default_destination]


def test_an_orphan_on_a_call_telnyx_has_ended_is_closed(receptionist, telnyx):
    telnyx.ended.add(CALL)
    deliver(receptionist, "call_dtmf_received")
    assert telnyx.commands == []
    assert receptionist.calls.has_ended(CALL)


# ---------------------------------------------------------------- stats and shutdown


def test_stats_count_live_calls_and_queued_events(make_receptionist, telnyx):
    brain = BlockingBrain()
    receptionist = make_receptionist(telnyx, brain)
    deliver(receptionist, "call_initiated", "call_answered", "call_speak_ended")
    receptionist.accept(webhook("call_transcription"))
    assert brain.asked.wait(5)
    receptionist.accept(webhook("call_dtmf_received"))
    assert receptionist.stats() == {"live_calls": 1, "queued_events": 1}
    brain.release.set()
    assert receptionist.queues.wait_idle(5)
    assert receptionist.stats() == {"live_calls": 1, "queued_events": 0}


def test_after_begin_shutdown_only_calls_already_held_are_accepted(receptionist, telnyx, store_kind):
    deliver(receptionist, "call_initiated")
    receptionist.begin_shutdown()
    assert receptionist.stopping
    assert receptionist.accept(webhook("call_answered")) is True
    new_call = webhook("call_initiated", call_control_id="v3:new-call")
    if store_kind == "redis":  # the call waits in Redis for a process that is not stopping
        assert receptionist.accept(new_call) is True
        assert receptionist.queues.wait_idle(5) and telnyx.actions("v3:new-call") == []
        assert receptionist.queues.pending() >= 1 and not receptionist.seen.first_time(new_call.event_id)
        return
    with pytest.raises(ServiceStopping, match="call=v3:new-call event=call.initiated refused"):
        receptionist.accept(new_call)
    assert receptionist.seen.first_time(new_call.event_id)  # not marked seen: a redelivery may be served


def test_drain_finishes_queued_work_and_stops_the_timers(receptionist, telnyx, store_kind):
    deliver(receptionist, "call_initiated")
    assert receptionist.drain(timeout_s=5) is True
    assert receptionist.stopping and receptionist.scheduler.stopped
    after_drain = webhook("call_initiated", call_control_id="v3:after-drain")
    if store_kind == "redis":  # taken, and left in Redis for the next process
        assert receptionist.accept(after_drain) is True
        assert telnyx.actions("v3:after-drain") == [] and receptionist.queues.pending() == 1
        return
    with pytest.raises(ServiceStopping):
        receptionist.accept(after_drain)
