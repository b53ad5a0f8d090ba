"""Checks that cannot wait, kept from yielding to every other greenlet (the gevent worker, deadline_worker.py).

gevent's stand-ins for the standard library are cooperative: where a call could block, the greenlet goes round
the event loop and waits its turn behind every other greenlet ready to run. Two of them do so even for checks
that by their nature return at once:

- `select.poll().poll(0)`, "is anything to read on this socket right now?". The SDK's HTTP client asks it of
  every idle kept-alive connection to the model, each time a request starts or a stream is closed, and urllib3
  asks it of the Telnyx connection before each command. With 50 calls streaming, the model client's pool holds
  dozens of connections: starting one request meant several trips round the loop before a byte was sent.
- a non-blocking `acquire` of a held `threading.Lock`, which `threading.Condition` uses to check that its
  caller holds the lock before each `notify`. Queues, semaphores (the thread pool's) and our own conditions
  (workers.py) pay it on every hand-over.

Each trip is short on an idle worker and long on a busy one, and they fall on the path from a transcript to the
model and from the model's first sentence to its `speak`: counted with a greenlet tracer, a 4-sentence streamed
turn went round the loop about 40 times for these alone (BENCHMARKS.md, section 7). `install()` makes both
answer at once, with the same result: a zero-timeout poll asks the kernel directly, and the lock check reads
whether the lock is held, which is what the failed non-blocking acquire meant. Anything that may really wait
(a poll with a timeout, a blocking acquire) still waits cooperatively.
"""

from __future__ import annotations

import select

from gevent import monkey


class _Poll:
    """`select.poll` as gevent patches it, except that a poll that may not wait is answered by the kernel at once."""

    def __init__(self, now, cooperative):
        self._now, self._cooperative = now(), cooperative()

    def register(self, fd, *eventmask) -> None:
        self._now.register(fd, *eventmask)
        self._cooperative.register(fd, *eventmask)

    def modify(self, fd, eventmask) -> None:
        self._now.modify(fd, eventmask)
        self._cooperative.modify(fd, eventmask)

    def unregister(self, fd) -> None:
        self._now.unregister(fd)
        self._cooperative.unregister(fd)

    def poll(self, timeout=None):
        if timeout == 0:
            return self._now.poll(0)
        return self._cooperative.poll(timeout)


def install() -> None:
    """After gevent's monkey-patching (again is harmless); leaves alone what gevent did not patch."""
    if monkey.is_object_patched("select", "poll") and not getattr(select.poll, "answers_at_once", False):
        now, cooperative = monkey.get_original("select", "poll"), select.poll

        def poll() -> _Poll:
            return _Poll(now, cooperative)

        poll.answers_at_once = True
        select.poll = poll
    if monkey.is_module_patched("threading"):
        from gevent.thread import LockType

        # threading.Condition takes a lock's own `_is_owned` when it has one, instead of probing with acquire(False).
        LockType._is_owned = LockType.locked
