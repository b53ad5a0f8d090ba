"""The carrier plays the network's side of a call: event order, speech queue, transfers and hangups."""

from __future__ import annotations

import base64

from simulator.carrier import Carrier, TransferPlan

VOICE = "Telnyx.KokoroTTS.af"


def types(carrier: Carrier, call_control_id: str | None = None) -> list[str]:
    return [e.event_type for e in carrier.events if call_control_id in (None, e.call_control_id)]


def answered_call(carrier: Carrier, plan: TransferPlan | None = None):
    call = carrier.place_call("+13125550111", "+13125550100", plan)
    assert carrier.handle_command(call.call_control_id, "answer", {}) is None
    return call


def speak(carrier, call, text, **extra):
    return carrier.handle_command(call.call_control_id, "speak", {"payload": text, "voice": VOICE, **extra})


def test_initiated_event_describes_a_parked_incoming_call(carrier):
    call = carrier.place_call("+13125550111", "+13125550100")
    payload = carrier.events[0].payload
    assert payload["direction"] == "incoming" and payload["state"] == "parked"
    assert payload["call_control_id"].startswith("v3:") and payload["client_state"] is None
    assert (payload["from"], payload["to"]) == ("+13125550111", "+13125550100")
    assert call.call_control_id == payload["call_control_id"]


def test_consecutive_speaks_queue_and_each_ends_completed(carrier):
    call = answered_call(carrier)
    speak(carrier, call, "first sentence")
    speak(carrier, call, "second")
    assert carrier.wait(lambda: not call.speaking, 5)
    assert types(carrier)[2:] == ["call.speak.started", "call.speak.ended", "call.speak.started", "call.speak.ended"]
    first, second = call.speeches
    assert second.started_at >= first.ended_at
    assert [e.payload["status"] for e in carrier.events if e.event_type == "call.speak.ended"] == ["completed"] * 2


def test_speech_lasts_about_fifteen_characters_per_second_times_speed(carrier):
    call = answered_call(carrier)
    speak(carrier, call, "x" * 150)  # 10 s of speech at speed 0.01 -> 0.1 s
    assert carrier.wait(lambda: not call.speaking, 5)
    duration = call.speeches[0].ended_at - call.speeches[0].started_at
    assert 0.08 <= duration < 0.5


def test_playback_stop_all_ends_current_speech_and_drops_the_queue(carrier):
    carrier.speed = 1.0
    call = answered_call(carrier)
    speak(carrier, call, "a long sentence that takes a while to say")
    speak(carrier, call, "queued and never heard")
    assert carrier.handle_command(call.call_control_id, "playback_stop", {"stop": "all"}) is None
    assert not call.speaking
    assert types(carrier).count("call.speak.started") == 1 and types(carrier)[-1] == "call.speak.ended"


def test_client_state_set_by_a_command_is_echoed_afterwards(carrier):
    call = answered_call(carrier)
    state = base64.b64encode(b"turn-1").decode()
    speak(carrier, call, "hi", client_state=state)
    assert carrier.events[-1].payload["client_state"] == state


def test_caller_speech_needs_transcription_start(carrier):
    call = answered_call(carrier)
    assert not carrier.say(call, "hello", 0.9)
    carrier.handle_command(call.call_control_id, "transcription_start", {})
    assert carrier.say(call, "hello", 0.9)
    data = carrier.events[-1].payload["transcription_data"]
    assert data == {"transcript": "hello", "confidence": 0.9, "is_final": True}


def test_caller_hangup_mid_speech_ends_the_speech_with_call_hangup_first(carrier):
    carrier.speed = 1.0
    call = answered_call(carrier)
    speak(carrier, call, "a long sentence the caller will not wait for")
    carrier.hang_up(call)
    assert types(carrier)[-2:] == ["call.speak.ended", "call.hangup"]
    assert carrier.events[-2].payload["status"] == "call_hangup"
    assert carrier.events[-1].payload["hangup_source"] == "caller"
    assert carrier.handle_command(call.call_control_id, "speak", {"payload": "x", "voice": VOICE}) == "90018"


def test_answered_transfer_creates_a_b_leg_in_the_same_session_and_bridges(carrier):
    call = answered_call(carrier, TransferPlan(answer=True, ring_s=1, talk_s=100))
    target_state = base64.b64encode(b"a-leg").decode()
    body = {"to": "+15555550100", "target_leg_client_state": target_state}
    assert carrier.handle_command(call.call_control_id, "transfer", body) is None
    assert carrier.wait(lambda: call.bridged_to is not None, 5)
    [b_leg] = call.b_legs
    b_events = [e for e in carrier.events if e.call_control_id == b_leg.call_control_id]
    assert [e.event_type for e in b_events] == ["call.initiated", "call.answered", "call.bridged"]
    initiated = b_events[0].payload
    assert (initiated["direction"], initiated["state"], initiated["to"]) == ("outgoing", "bridging", "+15555550100")
    assert initiated["call_session_id"] == call.a.call_session_id
    assert initiated["call_leg_id"] != call.a.call_leg_id
    assert initiated["client_state"] == target_state
    assert "call.bridged" in types(carrier, call.call_control_id)


def test_unanswered_transfer_hangs_up_the_b_leg_with_timeout_and_keeps_a_up(carrier):
    call = answered_call(carrier, TransferPlan(answer=False, ring_s=1))
    carrier.handle_command(call.call_control_id, "transfer", {"to": "+15555550100"})
    assert carrier.wait(lambda: call.transfer_failed_at is not None, 5)
    hangup = carrier.events[-1]
    assert hangup.event_type == "call.hangup" and hangup.call_control_id == call.b_legs[0].call_control_id
    assert hangup.payload["hangup_cause"] == "timeout"
    assert not call.ended


def test_duplicate_effects_are_counted(carrier):
    call = answered_call(carrier)
    carrier.speed = 1.0
    speak(carrier, call, "same words")
    speak(carrier, call, "same words")
    carrier.handle_command(call.call_control_id, "answer", {})
    assert call.duplicate_effects == 2
