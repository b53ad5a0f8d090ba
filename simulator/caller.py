"""A scripted caller: waits for the assistant to finish its turn, pauses, then speaks, presses or hangs up."""

from __future__ import annotations

import time

from simulator.carrier import Carrier, SimCall
from simulator.scenario import Scenario, Step

MIN_PAUSE_S = 0.05  # real seconds: even a fast caller leaves the service a moment to queue a second speak


class Caller:
    """Plays one scenario's caller steps against one call. `run()` returns notes about anything odd."""

    def __init__(self, carrier: Carrier, call: SimCall, scenario: Scenario, turn_timeout_s: float = 15.0):
        self.carrier = carrier
        self.call = call
        self.scenario = scenario
        self.speed = carrier.speed
        self.turn_timeout_s = turn_timeout_s
        self.notes: list[str] = []
        self._acted_at = 0.0  # when the caller last spoke, pressed or hung up

    def run(self, deadline: float) -> list[str]:
        for step in self.scenario.steps:
            if self._call_is_over() or time.monotonic() > deadline:
                break
            self._perform(step)
        remaining = max(0.0, deadline - time.monotonic())
        if not self.carrier.wait(lambda: self.call.ended, remaining):
            self.notes.append(f"call still up after {self.scenario.timeout_s:.0f} s; the caller hangs up")
            self.carrier.hang_up(self.call)
        return self.notes

    def _perform(self, step: Step) -> None:
        if step.during_speech:
            self._wait_for_new_speech()
            time.sleep(step.after_s * self.speed)
        elif step.kind != "wait_s":
            self._wait_for_turn(step)
        if self._call_is_over():
            return
        self._acted_at = time.monotonic()
        actions = {
            "say": lambda: self._say(step),
            "dtmf": lambda: self.carrier.press(self.call, step.text),
            "hangup": lambda: self.carrier.hang_up(self.call),
            "wait_s": lambda: time.sleep(step.pause_s * self.speed),
        }
        actions[step.kind]()

    def _say(self, step: Step) -> None:
        if not self.carrier.say(self.call, step.text, step.confidence):
            self.notes.append(f"not transcribed (transcription not running): {step.text!r}")

    def _call_is_over(self) -> bool:
        """Ended, or put through to a person (a voicemail answering is not the end: the caller waits it out)."""
        return self.call.ended or (self.call.bridged_to is not None and not self.call.transfer_plan.machine)

    def _started_speeches(self) -> int:
        with self.carrier.lock:
            return sum(s.started_at is not None for s in self.call.speeches)

    def _replied(self) -> bool:
        """The assistant started speaking since the caller's last action (or since a transfer failed)."""
        owed_since = max(self._acted_at, self.call.transfer_failed_at or 0.0)
        return any(s.started_at is not None and s.started_at > owed_since for s in self.call.speeches)

    def _wait_for_new_speech(self) -> None:
        """For barge-in and mid-sentence hangups: wait until the assistant starts its next speech."""
        ready = self.carrier.wait(lambda: self._call_is_over() or self.call.current is not None and self._replied(),
                                  self.turn_timeout_s)
        if not ready:
            self.notes.append(f"assistant did not start speaking within {self.turn_timeout_s:.0f} s")

    def _wait_for_turn(self, step: Step) -> None:
        """Wait until the assistant has replied and gone quiet, and stays quiet for the step's pause."""
        give_up = time.monotonic() + self.turn_timeout_s
        while time.monotonic() < give_up:
            if not self.carrier.wait(lambda: self._call_is_over() or self._my_turn(step), give_up - time.monotonic()):
                break
            if self._call_is_over():
                return
            if self._still_quiet_after_pause(step):
                return
        self.notes.append(f"assistant did not finish its turn within {self.turn_timeout_s:.0f} s before {step.text!r}")

    def _still_quiet_after_pause(self, step: Step) -> bool:
        """A reply may come in several speaks: only a pause with nothing new started ends the turn."""
        spoken = self._started_speeches()
        time.sleep(max(MIN_PAUSE_S, step.pause_s * self.speed))
        return self.carrier.wait(lambda: self._my_turn(step) and self._started_speeches() == spoken, 0)

    def _my_turn(self, step: Step) -> bool:
        call = self.call
        ringing = any(b.state == "bridging" for b in call.b_legs)
        listening = call.transcribing or step.kind != "say"
        if step.after_failed_transfer and call.transfer_failed_at is None:
            return False
        return call.answered and listening and not ringing and not call.speaking and self._replied()
