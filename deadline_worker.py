"""The gunicorn worker as deployed: gevent, with a deadline on every request it reads.

A webhook endpoint on the internet meets clients that connect and then send nothing, or send a byte a
second. With a thread per connection (gunicorn's gthread), a few dozen of them hold every thread and no
webhook is answered. Here each connection is a greenlet, a few KiB each, so thousands can wait at once,
and none waits for ever:

- the request line and headers must arrive within `keepalive` seconds of the connection opening or of the
  previous answer (gunicorn's gevent worker already bounds that wait; gunicorn.conf.py sets it). A second
  after SIGTERM those waits end and the connections close: an idle kept-alive connection must not hold a
  stopping worker for `keepalive` seconds that belong to the drain of queued call work (gunicorn.conf.py);
- the body must arrive within BODY_DEADLINE_S of the headers. It is read whole here, before the app sees
  the request, so the app never waits on a socket: a client too slow gets 408 and the connection closes.

Each wait is drawn at random between SPREAD and all of its bound: thousands of connections opened together
(an attacker's, or every client after a network blip) then end over a second or two, not in one moment
when the worker would close, and see reopened, all of them at once while webhooks queue behind.

A body larger than the app's limit (Flask's MAX_CONTENT_LENGTH, which app.py sets one byte over
`webhook.max_body_bytes`) is read no further than that: the app answers 413 and the connection closes.
Measured against the alternatives in BENCHMARKS.md ("Slow and idle clients").
"""

from __future__ import annotations

import contextlib
import io
import random
import resource

import gevent
from gunicorn.workers.ggevent import GeventWorker

import no_wait_checks

# A webhook is a few KiB sent at once; Telnyx gives up on an answer after 2 s anyway.
BODY_DEADLINE_S = 5.0
# Read no more than this of a body when the app sets no limit of its own.
DEFAULT_BODY_LIMIT = 1024 * 1024
# File descriptors kept free beyond the connections: the listening socket, logs, Redis, Telnyx, the model.
SPARE_DESCRIPTORS = 256
# Each deadline above is drawn between this share of it and all of it (see the module docstring).
SPREAD = 0.6
# After SIGTERM: how long idle kept-alive connections stay open, and how long a connection accepted before
# the listening socket closes gets for its request.
STOPPING_WAIT_S = 1.0

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class DeadlineWorker(GeventWorker):
    """gunicorn's gevent worker, reading each request body whole under a deadline before the app runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._waiting: dict[gevent.Greenlet, gevent.Timeout] = {}  # connections waiting for a request head

    def timeout_ctx(self):
        seconds = spread(self.cfg.keepalive) if self.alive else min(self.cfg.keepalive, STOPPING_WAIT_S)
        return _WaitForRequest(self._waiting, seconds)

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        # Not in the signal handler itself; and a second later, so that a request racing the signal on a
        # kept-alive connection still gets its answer (503) rather than a closed connection.
        gevent.spawn_later(STOPPING_WAIT_S, self._end_waits)

    def _end_waits(self) -> None:
        """Every connection waiting for a request head times out now (quietly: its own Timeout is raised)."""
        for greenlet, timeout in list(self._waiting.items()):
            greenlet.kill(timeout, block=False)

    def patch(self) -> None:
        super().patch()
        no_wait_checks.install()

    def init_process(self) -> None:
        raise_open_files_limit(self.cfg.worker_connections + SPARE_DESCRIPTORS, self.log)
        super().init_process()

    def handle_request(self, listener_name, req, sock, addr):
        if not self._read_body(req, sock):
            self.log.info("closed a connection from %s: body not received within %g s", addr, BODY_DEADLINE_S)
            _send_quietly(sock, REQUEST_TIMEOUT)
            raise StopIteration()  # gunicorn's handle() closes the connection quietly on this
        return super().handle_request(listener_name, req, sock, addr)

    def _read_body(self, req, sock) -> bool:
        """Replace req.body by its bytes, read within BODY_DEADLINE_S; False when the client was too slow."""
        limit = body_limit(self.wsgi)
        declared = _content_length(req)
        if declared is not None and declared > limit:
            req.must_close = True  # the app refuses it unread; the rest is never drained
            return True
        if req._expected_100_continue:  # gunicorn would send this when the app first reads the body
            sock.sendall(CONTINUE)
            req._expected_100_continue = False
        body = None
        with gevent.Timeout(spread(BODY_DEADLINE_S), False):
            body = req.body.read(limit)
        if body is None:
            return False
        if len(body) == limit:
            req.must_close = True  # perhaps more behind: the app answers 413 and the rest is never read
        req.body = io.BytesIO(body)
        return True


class _WaitForRequest:
    """gevent.Timeout(seconds, False) around reading a request head, listed while it waits so SIGTERM can end it."""

    def __init__(self, waiting: dict, seconds: float):
        self.waiting, self.timeout = waiting, gevent.Timeout(seconds, False)

    def __enter__(self) -> _WaitForRequest:
        self.waiting[gevent.getcurrent()] = self.timeout
        self.timeout.start()
        return self

    def __exit__(self, kind, value, traceback) -> bool | None:
        self.waiting.pop(gevent.getcurrent(), None)
        return self.timeout.__exit__(kind, value, traceback)


def spread(seconds: float) -> float:
    """A deadline of at most `seconds` and at least SPREAD of them, at random."""
    return seconds * random.uniform(SPREAD, 1.0)


def body_limit(app) -> int:
    """The most of a body worth reading: the app's own limit (Flask's MAX_CONTENT_LENGTH) if it has one."""
    config = getattr(app, "config", None) or {}
    return config.get("MAX_CONTENT_LENGTH") or DEFAULT_BODY_LIMIT


def _content_length(req) -> int | None:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            return int(value)  # gunicorn's parser has already refused anything but digits
    return None


def _send_quietly(sock, data: bytes) -> None:
    """Best effort, within a second: a client that stopped reading must not hold the greenlet either."""
    with gevent.Timeout(1.0, False), contextlib.suppress(OSError):
        sock.sendall(data)


def raise_open_files_limit(wanted: int, log) -> None:
    """Lift the soft limit on open files towards `wanted` (never above the hard limit): one per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files limited to %d by the hard limit: fewer than %d connections can be held", hard, wanted)
