"""Recording with consent, the decisions only: when recording may start, when it must stop, what a saved recording
carries. Pure, like dialog.py, which calls these from its handlers (greet, speech_ended, caller_turn).

A call's `recording` goes off -> pending (the greeting carrying the notice is playing) -> on (that speech played to
its end) -> declined (the caller said no). A notice cut short by a barge-in or a failed speak never ends as heard,
so such a call is not recorded.
"""

from __future__ import annotations

import re
from typing import Any

from calls import CallState
from commands import Command, Speak, StartRecording, StopRecording

_DECLINES_RECORDING = re.compile(
    r"\b(stop|don'?t|do not|didn'?t|rather not|not|no)\b[\w\s',]{0,30}?\brecord", re.IGNORECASE
)


def declines_recording(utterance: str) -> bool:
    """"Please don't record this", "stop recording", "no recording": consent withdrawn, whatever the brain thinks."""
    return bool(_DECLINES_RECORDING.search(utterance))


def notice_heard(state: CallState, ended: int) -> list[Command]:
    """The recording notice played to its end: only now may recording start. A notice cut short (barge-in,
    a failed speak) never ends here, and the call is not recorded."""
    if state.recording != "pending" or ended != state.notice_speech:
        return []
    state.recording = "on"
    return [StartRecording()]


def withdraw_consent(state: CallState) -> list[Command]:
    """The caller does not want to be recorded: stop if recording, and never start."""
    stop: list[Command] = [StopRecording()] if state.recording == "on" else []
    state.recording = "declined"
    return stop


def recording_failed(state: CallState, failed: Command) -> None:
    """record_start refused, or the notice's speech failed (it was not heard): the call is not recorded."""
    notice_failed = isinstance(failed, Speak) and failed.tag == state.notice_speech
    if (isinstance(failed, StartRecording) or notice_failed) and state.recording in ("pending", "on"):
        state.recording = "off"


def recording_url(payload: dict[str, Any]) -> str | None:
    """The mp3's URL from a call.recording.saved payload (public URL first), or None."""
    for key in ("public_recording_urls", "recording_urls"):
        urls = payload.get(key)
        if isinstance(urls, dict) and isinstance(urls.get("mp3"), str) and urls["mp3"]:
            return urls["mp3"]
    return None
