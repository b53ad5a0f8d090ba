"""What can go wrong with a Call Control request in the fake Telnyx (simulator/fake_telnyx.py).

A `Fault` is an error status in Telnyx's error envelope (`http_error`, with a Retry-After when given), a
redirect elsewhere (`redirect`), or something the transport does: `RESET` resets the connection before
answering; `CUT` sends 200 and half the body, then resets; `slow(s)` answers after `s` seconds;
`trickle(s)` sends the body one byte every `s` seconds, `header_trickle(s)` the status line and headers
too; `huge_body(n)` pads the answer to `n` bytes and `ENDLESS` sends a chunked body that never ends (both
written lazily, so the fake's own memory stays flat); `AMBIGUOUS` answers 503. All but the first three
hit the answer only: the command was carried out, so a retry under the same command_id is acknowledged
without acting again, as Telnyx does. A `FaultPlan` asks for random faults instead (the simulator's chaos
switches).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """How the fake answers one request instead of the normal way; build one with the helpers below."""

    kind: str  # "status", "redirect", "reset", "cut", "slow", "trickle", "header_trickle", "huge", "endless", ...
    status: int = 0
    code: str = ""
    retry_after: str | None = None
    seconds: float = 0.0
    location: str = ""  # where a redirect points
    size: int = 0  # bytes in a huge body

    @property
    def acts(self) -> bool:
        """True when the command is carried out and only the answer goes wrong."""
        return self.kind in ("cut", "slow", "trickle", "header_trickle", "huge", "endless", "ambiguous")

    @property
    def label(self) -> str:
        """What RequestRecord.fault says, e.g. "429 10011 Retry-After 3600", "reset", "slow 1.5 s", "302 redirect"."""
        if self.kind == "status":
            return f"{self.status} {self.code}" + (f" Retry-After {self.retry_after}" if self.retry_after else "")
        if self.kind == "redirect":
            return f"{self.status} redirect"
        if self.kind == "huge":
            return f"huge {self.size} bytes"
        return f"{self.kind} {self.seconds:g} s" if self.seconds else self.kind


def http_error(status: int, code: str = "10007", retry_after: str | None = None) -> Fault:
    """Answer `status` with Telnyx error `code` in the errors envelope, without acting."""
    return Fault("status", status, code, retry_after)


def redirect(status: int, location: str) -> Fault:
    """Answer `status` (301, 302, 307 or 308) with `Location: location`, without acting: what a proxy, a wrong
    base URL or a hijacked address does. A client that follows it sends the command (or, after a 301 or 302, a
    GET) to whatever host `location` names."""
    return Fault("redirect", status, location=location)


def huge_body(size: int) -> Fault:
    """Carry the command out, then answer with a body of `size` bytes: the real answer, padded with spaces."""
    return Fault("huge", size=size)


def header_trickle(seconds_per_byte: float) -> Fault:
    """Carry the command out, then send the whole answer, status line and headers included, a byte at a time."""
    return Fault("header_trickle", seconds=seconds_per_byte)


def slow(seconds: float) -> Fault:
    return Fault("slow", seconds=seconds)


def trickle(seconds_per_byte: float) -> Fault:
    """Carry the command out, then send the status line and headers at once and the body a byte at a time."""
    return Fault("trickle", seconds=seconds_per_byte)


RESET = Fault("reset")
CUT = Fault("cut")
ENDLESS = Fault("endless")  # carried out; the answer's chunked body never ends
AMBIGUOUS = Fault("ambiguous")


@dataclass
class FaultPlan:
    """Random failures. `error_rate` of requests get 500/503 (or 429 for `rate_limit_share` of them).

    `ambiguous_share` of those failures happen after the command was acted on (Telnyx did it but the
    answer was lost), which only command_id dedup makes safe. A command_id is failed at most
    `max_faults_per_command` times so a retrying client always gets through eventually. Every answer
    is delayed by `latency_s`.
    """

    error_rate: float = 0.0
    rate_limit_share: float = 0.25
    retry_after_s: float | None = None
    ambiguous_share: float = 0.0
    latency_s: float = 0.0
    max_faults_per_command: int = 1
