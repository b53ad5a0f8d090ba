"""stores/codec.py: a call's state and its queued events survive the trip through JSON unchanged."""

from __future__ import annotations

import json

import pytest

from brains import Turn
from calls import CallState, Phase, TurnRecord
from commands import Hangup, Speak, Transfer
from events import CallEvent, CallExpired, LegEvent, TimerFired
from stores.codec import CorruptRecord, dump_event, dump_state, load_event, load_state

WEBHOOK = CallEvent("ev-1", "call.transcription", "v3:call", {"transcription_data": {"transcript": "hi"},
                                                              "nested": [{"a": [1, 2.5, None, True]}]},
                    "2026-12-02T10:00:00Z", 1796000000.25)


def busy_state() -> CallState:
    """A state with every field away from its default."""
    return CallState(
        "v3:call", caller="+13125550111", started_at=1796000000.5, phase=Phase.TAKING_MESSAGE, initiated=True,
        answered=True, ai=False, speaking=2, last_speech=5, speech_echoed=True,
        after_speech=Transfer("+15555550100", "front_desk"), low_confidence_streak=1,
        silence_token=4, speech_token=3, stale_speech_ends=1, silence_reprompted=True, transfer_attempted=True,
        transfer_destination="front_desk", outcome="message_taken", escalation_reason="asked for a person",
        history=[Turn("caller", "when are you open"), Turn("assistant", "8 to 5")],
        turns=[TurnRecord("when are you open", 0.93, 1796000001.0, 0.9, "continue", "8 to 5", 1796000001.4)],
        messages=["call me back ☎ ünïcode"], last_event_at=1796000002.0,
    )


def test_a_state_with_every_field_set_comes_back_equal():
    state = busy_state()
    assert load_state(dump_state(state)) == state


@pytest.mark.parametrize("command", [None, Speak("one moment", 4), Hangup(), Transfer("+15555550100", "front_desk")])
def test_the_command_waiting_for_speech_to_end_keeps_its_type(command):
    state = CallState("v3:call", after_speech=command)
    restored = load_state(dump_state(state)).after_speech
    assert restored == command and type(restored) is type(command)


@pytest.mark.parametrize("event", [WEBHOOK, LegEvent(WEBHOOK), TimerFired("silence", 7), CallExpired()],
                         ids=["webhook", "leg", "timer", "expired"])
def test_every_kind_of_queued_event_comes_back_equal(event):
    restored = load_event(dump_event(event))
    assert restored == event and type(restored) is type(event)


def test_a_payload_with_out_of_range_numbers_and_deep_nesting_survives():
    deep: dict = {}
    node = deep
    for _ in range(400):
        node["x"] = {}
        node = node["x"]
    event = CallEvent("ev-2", "call.answered", "v3:call", {"confidence": float("inf"), "deep": deep})
    assert load_event(dump_event(event)) == event


@pytest.mark.parametrize("text", [b"", b"not json", b"[1, 2]", b'{"kind": "nonsense"}', b'{"kind": "timer"}',
                                  b'{"phase": "flying"}'])
def test_stored_text_the_codec_did_not_write_is_a_corrupt_record(text):
    with pytest.raises(CorruptRecord):
        load_event(text)
    with pytest.raises(CorruptRecord):
        load_state(text)


def test_a_state_written_by_a_newer_version_loses_only_the_fields_this_one_does_not_know(caplog):
    """A rolling deploy: the newer version's extra fields (call, turn, history, command) are dropped, once logged."""
    data = json.loads(dump_state(busy_state()))
    data["future_field"] = {"anything": 1}
    data["turns"][0]["future_turn_field"] = 2
    data["history"][0]["future_turn_field"] = 3
    data["after_speech"]["future_command_field"] = 4
    text = json.dumps(data)
    assert load_state(text) == busy_state()
    assert load_state(text) == busy_state()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings.count("CallState stored by a newer version: ignoring future_field") == 1
    assert "TurnRecord stored by a newer version: ignoring future_turn_field" in warnings
    assert "Transfer stored by a newer version: ignoring future_command_field" in warnings


def test_a_state_written_by_an_older_version_takes_the_defaults_of_fields_it_did_not_have():
    data = json.loads(dump_state(busy_state()))
    del data["stale_speech_ends"], data["turns"][0]["responded_at"]
    restored = load_state(json.dumps(data))
    assert restored.stale_speech_ends == 0 and restored.turns[0].responded_at is None
    assert restored.caller == "+13125550111" and restored.messages == ["call me back ☎ ünïcode"]


def test_a_queued_webhook_from_a_newer_version_keeps_what_this_one_knows():
    data = json.loads(dump_event(WEBHOOK))
    data["future_field"] = True
    assert load_event(json.dumps(data)) == WEBHOOK
