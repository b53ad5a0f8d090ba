"""runners.py: each command carried out (the Call Control verb and body, the brain, a timer, the call's end) and
what comes back to the loop: nothing, a follow-up event, or CALL_OVER."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from brains import BrainReply, Turn
from calls import CallRegistry, CallState, TurnRecord
from commands import (
    Answer,
    AskBrain,
    FinishCall,
    Hangup,
    Speak,
    StartTimer,
    StartTranscription,
    StopPlayback,
    StopTranscription,
    Transfer,
)
from events import BrainFailed, BrainReplied, CommandFailed, TimerFired, transfer_client_state
from fakes import ManualClock, brain_error
from message_delivery import build_message_delivery
from runners import CALL_OVER, MAX_REASON_CHARS, Runners
from spec import validate_request
from telnyx_client import TelnyxConnectionError, TelnyxHTTPError, TelnyxTimeout

CALL = "v3:runner-test"
COMMAND_ID = "c0ffee00-0000-4000-8000-000000000001"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def calls(settings, clock) -> CallRegistry:
    return CallRegistry(settings.calls.max_call_age_s, clock=clock)


@pytest.fixture
def scheduled() -> list[tuple]:
    """What runners asked to schedule: (delay_s, call_control_id, event)."""
    return []


@pytest.fixture
def runners(settings, telnyx, scripted_brain, calls, scheduled, clock) -> Runners:
    deliveries = build_message_delivery(settings, None, clock)  # nothing configured: the outbox thread never starts
    return Runners(settings, telnyx, scripted_brain, calls, lambda *timer: scheduled.append(timer), clock, deliveries)


@pytest.fixture
def state(calls) -> CallState:
    return calls.open(CALL)


def expected_body(command, settings) -> tuple[str, dict]:
    """The Call Control action and body each command must produce (without command_id)."""
    transcription = settings.transcription
    return {
        Answer: ("answer", {}),
        Speak: ("speak", {"payload": "Hello.", "voice": settings.assistant.voice,
                          "language": settings.assistant.language}),
        StartTranscription: ("transcription_start", {
            "transcription_engine": transcription.engine, "transcription_tracks": "inbound",
            "transcription_engine_config": {"transcription_engine": transcription.engine,
                                            "language": transcription.language},
        }),
        StopTranscription: ("transcription_stop", {}),
        StopPlayback: ("playback_stop", {"stop": "all"}),
        Transfer: ("transfer", {"to": "+15555550100", "timeout_secs": settings.transfer.ring_timeout_s,
                                "target_leg_client_state": transfer_client_state(CALL)}),
        Hangup: ("hangup", {}),
    }[type(command)]


TELNYX_COMMANDS = [Answer(), Speak("Hello."), StartTranscription(), StopTranscription(), StopPlayback(),
                   Transfer("+15555550100", "front_desk"), Hangup()]


# ---------------------------------------------------------------- Call Control commands


@pytest.mark.parametrize("command", TELNYX_COMMANDS, ids=lambda command: type(command).__name__)
def test_each_command_sends_its_verb_with_its_body_and_command_id(runners, state, telnyx, settings, command):
    assert runners.run(state, command, COMMAND_ID) is None
    action, body = expected_body(command, settings)
    (sent,) = telnyx.commands
    assert (sent.action, sent.call_control_id) == (action, CALL)
    assert sent.body == {**body, "command_id": COMMAND_ID}
    validate_request(sent.action, sent.body)


@pytest.mark.parametrize(
    "error",
    [TelnyxHTTPError(500, "10007", "unexpected"), TelnyxTimeout("speak timed out"), TelnyxConnectionError("down")],
    ids=lambda error: type(error).__name__,
)
def test_a_telnyx_error_comes_back_as_command_failed(runners, state, telnyx, caplog, error):
    telnyx.failures["speak"] = error
    with caplog.at_level(logging.ERROR, logger="runners"):
        follow_up = runners.run(state, Speak("Hello."), COMMAND_ID)
    assert follow_up == CommandFailed(Speak("Hello."), type(error).__name__)
    assert f"call={CALL} speak failed" in caplog.text


@pytest.mark.parametrize("command", TELNYX_COMMANDS, ids=lambda command: type(command).__name__)
def test_a_call_telnyx_says_has_ended_is_over(runners, state, telnyx, command):
    telnyx.ended.add(CALL)
    assert runners.run(state, command, COMMAND_ID) is CALL_OVER
    assert telnyx.commands == []


def test_speak_marks_when_the_last_turn_was_answered(runners, state, clock):
    state.turns = [TurnRecord("earlier", 0.9, 1.0, responded_at=2.0), TurnRecord("hours?", 0.9, clock.now - 1)]
    runners.run(state, Speak("We open at 8."), COMMAND_ID)
    clock.advance(5)
    runners.run(state, Speak("Anything else?"), "another-id")
    assert [turn.responded_at for turn in state.turns] == [2.0, clock.now - 5]


def test_a_speak_that_was_not_sent_answers_no_turn(runners, state, telnyx):
    state.turns = [TurnRecord("hours?", 0.9, 1.0)]
    telnyx.ended.add(CALL)
    runners.run(state, Speak("We open at 8."), COMMAND_ID)
    assert state.turns[0].responded_at is None


# ---------------------------------------------------------------- the brain


def test_ask_brain_returns_the_reply_as_an_event(runners, state, scripted_brain):
    reply = BrainReply("We open at 8.", "continue", 0.9)
    scripted_brain.enqueue(reply)
    state.history = [Turn("assistant", "How can I help?")]
    assert runners.run(state, AskBrain("what are your hours"), COMMAND_ID) == BrainReplied(reply)
    assert scripted_brain.history == [([Turn("assistant", "How can I help?")], "what are your hours")]


def test_a_brain_error_comes_back_as_brain_failed_with_a_short_reason(runners, state, scripted_brain):
    scripted_brain.enqueue(brain_error("timed out"))
    scripted_brain.enqueue(brain_error("x" * 1000))
    assert runners.run(state, AskBrain("hi"), COMMAND_ID) == BrainFailed("timed out")
    assert runners.run(state, AskBrain("hi"), COMMAND_ID) == BrainFailed("x" * MAX_REASON_CHARS)


def test_a_crashing_brain_is_a_brain_failure_not_a_crash(runners, state, scripted_brain, caplog):
    scripted_brain.enqueue(ZeroDivisionError("division by zero"))
    with caplog.at_level(logging.ERROR, logger="runners"):
        assert runners.run(state, AskBrain("hi"), COMMAND_ID) == BrainFailed("ZeroDivisionError")
    assert f"call={CALL} brain crashed" in caplog.text and caplog.records[0].exc_info is not None


# ---------------------------------------------------------------- timers and the end of the call


def test_start_timer_schedules_a_timer_event_for_the_call(runners, state, telnyx, scheduled):
    assert runners.run(state, StartTimer("silence", 10.0, 3), COMMAND_ID) is None
    assert scheduled == [(10.0, CALL, TimerFired("silence", 3))]
    assert telnyx.commands == []


def test_finish_call_writes_the_log_line_and_closes_the_call(runners, state, calls, settings):
    state.caller, state.outcome = "+13125550111", "transferred"
    assert runners.run(state, FinishCall(), COMMAND_ID) is CALL_OVER
    (record,) = [json.loads(line) for line in Path(settings.call_log.path).read_text().splitlines()]
    assert (record["call_control_id"], record["outcome"], record["caller"]) == (CALL, "transferred", "+1********11")
    assert calls.get(CALL) is None and calls.has_ended(CALL)
