"""What the dialog asks for, as plain data; `runners.py` turns each command into a Telnyx call, a brain call or a timer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Speak:
    text: str
    tag: int = 0  # the speech's number on its call (dialog.say), echoed in its webhooks; 0 sends no tag
    filler: bool = False  # said while the reply is slow to come (assistant.holding), not part of it


@dataclass(frozen=True)
class StartTranscription:
    pass


@dataclass(frozen=True)
class StopTranscription:
    pass


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class Transfer:
    to: str
    destination: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class StartRecording:
    """Record the call (dual channel, mp3); sent only once the consent notice has been heard."""


@dataclass(frozen=True)
class StopRecording:
    pass


@dataclass(frozen=True)
class HangupLeg:
    """Hang up the transfer leg (a voicemail answered it); the caller's own call goes on."""

    leg: str  # the leg's call_control_id


@dataclass(frozen=True)
class AskBrain:
    utterance: str


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay_s: float
    token: int


@dataclass(frozen=True)
class DeliverMessage:
    """The caller left a message: queue it for the staff (message_delivery.py); the caller does not wait."""

    text: str


@dataclass(frozen=True)
class FinishCall:
    """The call is over: write its log line and forget it."""


TelnyxCommand = (Answer | Speak | StartTranscription | StopTranscription | StopPlayback | Transfer | Hangup
                 | HangupLeg | StartRecording | StopRecording)
Command = TelnyxCommand | AskBrain | StartTimer | DeliverMessage | FinishCall
