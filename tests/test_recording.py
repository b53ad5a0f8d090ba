"""recording.enabled: a consent notice in the greeting, record_start only once it has been heard, record_stop when
the caller says no, the recording's URL in the call log. Bodies checked against StartRecordingRequest and
StopRecordingRequest; the call.recording.saved fixture against CallRecordingSaved (test_fixtures_and_spec.py)."""

from __future__ import annotations

import json

import pytest
from test_receptionist import CALL, deliver, fresh, speak_ended

from brains import BrainReply
from calls import CallState
from commands import AskBrain, Speak, StartRecording, StartTimer, StartTranscription, StopPlayback, StopRecording
from config import build_settings
from consent import declines_recording
from dialog import Policy, decide
from events import BrainReplied, CallEvent, CommandFailed, speech_client_state
from fakes import ManualScheduler
from receptionist import Receptionist
from spec import validate_request
from store_setup import with_own_store


def settings_for(raw_config, store_env=None, enabled=True):
    raw_config["webhook"]["verify_signatures"] = False
    raw_config["recording"] = {"enabled": enabled}
    return build_settings(raw_config, store_env or {})


def webhook(event_type: str, **payload) -> CallEvent:
    payload.setdefault("call_control_id", "v3:rec")
    return CallEvent(f"e-{event_type}-{len(payload)}-{id(payload)}", event_type, "v3:rec", payload)


def said(text: str) -> CallEvent:
    return webhook("call.transcription", transcription_data={"transcript": text, "confidence": 0.95, "is_final": True})


def greeted(policy: Policy) -> tuple[CallState, list]:
    state = CallState("v3:rec")
    decide(state, webhook("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    return state, decide(state, webhook("call.answered"), policy)


@pytest.fixture
def policy(raw_config) -> Policy:
    return Policy.from_settings(settings_for(raw_config))


def test_the_greeting_carries_the_notice_and_nothing_is_recorded_yet(policy, raw_config):
    state, greeting = greeted(policy)
    assert greeting == [Speak(f"{raw_config['assistant']['greeting']} {policy.lines['recording_notice']}", 1),
                        StartTranscription()]
    assert state.recording == "pending"


def test_recording_starts_once_the_notice_has_played_to_its_end(policy):
    state, _ = greeted(policy)
    commands = decide(state, webhook("call.speak.ended", client_state=speech_client_state(1)), policy)
    assert commands[0] == StartRecording() and isinstance(commands[1], StartTimer)
    assert state.recording == "on"
    # Later speeches ending start nothing more.
    decide(state, BrainReplied(BrainReply("We open at nine.", "continue", 0.9)), policy)
    assert decide(state, webhook("call.speak.ended", client_state=speech_client_state(2)), policy)[:1] != [
        StartRecording()]


def test_a_notice_cut_short_by_the_caller_means_no_recording(policy):
    state, _ = greeted(policy)
    interrupted = decide(state, said("what time do you open"), policy)
    assert interrupted[0] == StopPlayback() and isinstance(interrupted[1], AskBrain)
    decide(state, webhook("call.speak.ended", client_state=speech_client_state(1)), policy)  # the stopped notice
    decide(state, BrainReplied(BrainReply("We open at nine.", "continue", 0.9)), policy)
    after = decide(state, webhook("call.speak.ended", client_state=speech_client_state(2)), policy)
    assert StartRecording() not in after and state.recording == "pending"


def test_a_notice_that_failed_to_play_means_no_recording(policy):
    state, greeting = greeted(policy)
    commands = decide(state, CommandFailed(greeting[0], "TelnyxHTTPError"), policy)
    assert StartRecording() not in commands and state.recording == "off"


def test_saying_no_stops_the_recording_and_is_acknowledged(policy):
    state, _ = greeted(policy)
    decide(state, webhook("call.speak.ended", client_state=speech_client_state(1)), policy)
    commands = decide(state, said("please don't record this call"), policy)
    assert commands == [StopRecording(), Speak(policy.lines["recording_stopped"], 2)]
    assert state.recording == "declined"
    again = decide(state, said("stop recording"), policy)  # already stopped: an ordinary turn
    assert StopRecording() not in again and again[-1] == AskBrain("stop recording")


def test_saying_no_while_the_notice_plays_means_it_never_starts(policy):
    state, _ = greeted(policy)
    commands = decide(state, said("I don't want to be recorded"), policy)
    assert StopRecording() not in commands and Speak(policy.lines["recording_stopped"], 2) in commands
    decide(state, webhook("call.speak.ended", client_state=speech_client_state(1)), policy)
    after = decide(state, webhook("call.speak.ended", client_state=speech_client_state(2)), policy)
    assert StartRecording() not in after and state.recording == "declined"


def test_without_recording_enabled_nothing_changes(raw_config):
    policy = Policy.from_settings(settings_for(raw_config, enabled=False))
    state, greeting = greeted(policy)
    assert greeting[0].text == raw_config["assistant"]["greeting"]
    assert StartRecording() not in decide(state, webhook("call.speak.ended", client_state=speech_client_state(1)),
                                          policy)
    assert decide(state, said("please don't record this"), policy) == [AskBrain("please don't record this")]


@pytest.mark.parametrize("text, declines", [
    ("please don't record this", True), ("I do not want to be recorded", True), ("stop recording please", True),
    ("no recording thanks", True), ("I'd rather you didn't record me", True),
    ("can you record my new address", False), ("I need my dental records", False), ("what time is it", False),
])
def test_what_counts_as_saying_no(text, declines):
    assert declines_recording(text) is declines


# ---------------------------------------------------------------- through the receptionist, on both stores


@pytest.fixture
def receptionist(raw_config, store_env, telnyx, scripted_brain, tmp_path):
    raw_config["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    made = Receptionist(with_own_store(settings_for(raw_config, store_env)), telnyx, scripted_brain,
                        scheduler=ManualScheduler())
    yield made
    made.shutdown()


@pytest.mark.both_stores
def test_record_start_and_stop_bodies_match_the_spec(receptionist, telnyx):
    deliver(receptionist, "call_initiated", "call_answered")
    assert "record_start" not in telnyx.actions()
    deliver(receptionist, speak_ended(1))
    (start,) = [c for c in telnyx.commands if c.action == "record_start"]
    assert (start.call_control_id, start.body["format"], start.body["channels"]) == (CALL, "mp3", "dual")
    validate_request("record_start", start.body)
    deliver(receptionist, fresh("call_transcription", transcription_data={
        "transcript": "please stop recording", "confidence": 0.95, "is_final": True}))
    (stop,) = [c for c in telnyx.commands if c.action == "record_stop"]
    validate_request("record_stop", stop.body)
    assert telnyx.actions()[-2:] == ["record_stop", "speak"]


@pytest.mark.both_stores
def test_the_recording_url_reaches_the_call_log_even_after_the_hangup(receptionist, tmp_path):
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_hangup", "call_recording_saved")
    lines = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    call, saved = lines
    assert call["call_control_id"] == CALL and call["recording"] == "on" and call["recording_url"] is None
    assert saved["record"] == "recording" and saved["call_control_id"] == CALL
    assert saved["recording_url"] == "https://recordings.example.invalid/public/5f0c2a3e-8d41-11ee-9b7c-02420a0b0c11.mp3"


@pytest.mark.both_stores
def test_a_recording_saved_while_the_call_is_live_goes_in_its_line(receptionist, tmp_path):
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1), "call_recording_saved", "call_hangup")
    (call,) = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert call["recording_url"].endswith("/public/5f0c2a3e-8d41-11ee-9b7c-02420a0b0c11.mp3")


@pytest.mark.both_stores
def test_a_recording_of_a_call_never_seen_writes_nothing(receptionist, tmp_path):
    deliver(receptionist, fresh("call_recording_saved", call_control_id="v3:never-seen"))
    assert not (tmp_path / "calls.jsonl").exists()
