"""When a request's bytes reached a fake server, by the kernel's clock rather than by the fake's own.

A fake API notes a request's arrival when one of its threads gets round to reading it. In a busy process
(the bench runs the simulator's callers and the fake Telnyx API in one interpreter) that thread may wait for
the GIL long after the bytes came in, and a benchmark reading the note counts the wait as the service's.

On Linux, SO_TIMESTAMPNS has the kernel stamp every segment it receives, and `recvmsg` returns the stamp of
the last one read with the bytes. `Stamped` is a mixin for an http.server handler that reads its requests
that way: `arrived_at()` is when the bytes of the request read so far had all reached the machine. Where
there is no such stamp (another system, or a TLS socket, which has no `recvmsg`) it is the moment the bytes
were read: the fake's own view, as before.
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import time
from typing import Any

SO_TIMESTAMPNS = 35  # Linux's value on every architecture CPython runs on; not exported by the socket module
_TIMESPEC = struct.Struct("@ll")  # the stamp, a struct timespec: seconds and nanoseconds as C longs
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what `sock` receives (a listening socket passes this on to the ones it accepts).
    False where the system has no such stamp."""
    if sys.platform != "linux" or not hasattr(socket.socket, "recvmsg_into"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def to_monotonic(realtime_s: float) -> float:
    """A CLOCK_REALTIME instant (what the kernel stamps) on the time.monotonic() clock the fakes record with.
    Never later than now: a stamp the wall clock's adjustment would put in the future means "just now"."""
    now = time.monotonic()
    return min(now, realtime_s - (time.time() - now))


class StampedReader(io.RawIOBase):
    """A socket's bytes as a raw stream, remembering when the latest of them reached the machine."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self._sock = sock
        self.last_at: float | None = None  # time.monotonic() of the latest bytes read, None before any

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size, ancillary, _flags, _address = self._sock.recvmsg_into([buffer], _ANCILLARY_SIZE)
        self.last_at = _stamp(ancillary) or time.monotonic()
        return size

    def fileno(self) -> int:
        return self._sock.fileno()


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack(data[: _TIMESPEC.size])
            if seconds:
                return to_monotonic(seconds + nanoseconds / 1e9)
    return None


class Stamped:
    """Mixin for a BaseHTTPRequestHandler (put it first): requests read through a `StampedReader` where the
    socket allows it. Its server should `enable()` its listening socket before serving."""

    _reader: StampedReader | None = None

    def setup(self) -> None:
        super().setup()  # type: ignore[misc]
        connection = self.connection  # type: ignore[attr-defined]
        if _ANCILLARY_SIZE and type(connection) is socket.socket and enable(connection):  # not an SSLSocket
            self.rfile.close()  # type: ignore[has-type]
            self._reader = StampedReader(connection)
            self.rfile = io.BufferedReader(self._reader)

    def arrived_at(self) -> float:
        """When the bytes of the current request read so far had reached the machine (see the module's text)."""
        reader = self._reader
        return reader.last_at if reader is not None and reader.last_at is not None else time.monotonic()
