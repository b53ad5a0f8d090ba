"""no_wait_checks.py: under gevent, checks that cannot wait answer without a trip round the event loop.

Each case runs in a fresh interpreter that gevent has monkey-patched, as the gunicorn worker is; this one is
never patched. A trip round the loop shows as a greenlet switch, counted with greenlet's tracer. Every case is
also run without `install()`, to show that the switch it looks for is really there to be removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import json, select, socket, sys, threading
import gevent, greenlet
sys.path.insert(0, {root!r})
import no_wait_checks
if {install}:
    no_wait_checks.install()
switches = []
greenlet.settrace(lambda event, args: switches.append(event) if event in ("switch", "throw") else None)

def switched(check):
    before = len(switches)
    result = check()
    return result, len(switches) - before

out = {{}}
"""


def run_patched(body: str, install: bool = True) -> dict:
    script = PRELUDE.format(root=str(ROOT), install=install) + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


POLL = """
a, b = socket.socketpair()
poll = select.poll()
poll.register(a.fileno(), select.POLLIN)
out["empty"] = switched(lambda: poll.poll(0))
b.send(b"x")
out["ready"] = switched(lambda: poll.poll(0))
"""


@pytest.mark.parametrize("install", [True, False])
def test_a_poll_that_may_not_wait_answers_without_a_switch(install):
    out = run_patched(POLL, install)
    (empty, empty_switches), (ready, ready_switches) = out["empty"], out["ready"]
    assert empty == []
    assert len(ready) == 1 and ready[0][1] & 1  # POLLIN
    if install:
        assert (empty_switches, ready_switches) == (0, 0)
    else:  # gevent's own poll goes round the loop even to say "nothing yet"
        assert empty_switches > 0


def test_a_poll_with_a_timeout_still_lets_other_greenlets_run():
    out = run_patched("""
        a, b = socket.socketpair()
        poll = select.poll()
        poll.register(a.fileno(), select.POLLIN)
        poll.modify(a.fileno(), select.POLLIN | select.POLLPRI)
        ran = []
        gevent.spawn(lambda: ran.append("other"))
        gevent.spawn_later(0.02, b.send, b"late")
        out["events"] = poll.poll(2000)
        out["ran"] = ran
        poll.unregister(a.fileno())
        out["after_unregister"] = poll.poll(0)
    """)
    assert out["ran"] == ["other"]
    assert [fd_events[1] & 1 for fd_events in out["events"]] == [1]
    assert out["after_unregister"] == []


LIBRARIES = """
from urllib3.util.wait import wait_for_read
from httpcore2._utils import is_socket_readable
a, b = socket.socketpair()
out["urllib3_idle"] = switched(lambda: wait_for_read(a, timeout=0.0))
out["httpcore_idle"] = switched(lambda: is_socket_readable(a))
b.close()  # the server hung up: the kept-alive connection must be seen as dropped
out["urllib3_closed"] = switched(lambda: wait_for_read(a, timeout=0.0))
out["httpcore_closed"] = switched(lambda: is_socket_readable(a))
"""


@pytest.mark.parametrize("install", [True, False])
def test_the_http_clients_check_their_idle_connections_without_a_switch(install):
    out = run_patched(LIBRARIES, install)
    assert [out[k][0] for k in ("urllib3_idle", "httpcore_idle", "urllib3_closed", "httpcore_closed")] == [
        False, False, True, True]
    switches = [out[k][1] for k in ("urllib3_idle", "httpcore_idle", "urllib3_closed", "httpcore_closed")]
    if install:
        assert switches == [0, 0, 0, 0]
    else:
        assert all(count > 0 for count in switches)


CONDITION = """
lock = threading.Lock()
condition = threading.Condition(lock)
with condition:
    out["notify"] = switched(condition.notify_all)[1]
try:
    condition.notify()
    out["unheld"] = "no error"
except RuntimeError as exc:
    out["unheld"] = str(exc)
items, taken = [], []
def consumer():
    with condition:
        while not items:
            condition.wait()
        taken.append(items.pop())
waiting = gevent.spawn(consumer)
gevent.sleep(0)
with condition:
    items.append("reply")
    condition.notify()
waiting.join(timeout=2)
out["taken"] = taken
"""


@pytest.mark.parametrize("install", [True, False])
def test_a_condition_notifies_without_a_switch_and_still_hands_over(install):
    out = run_patched(CONDITION, install)
    assert out["taken"] == ["reply"]
    assert "un-acquired lock" in out["unheld"]
    if install:
        assert out["notify"] == 0
    else:  # the held lock is probed with acquire(False), which yields when it fails
        assert out["notify"] > 0


def test_the_worker_installs_it_after_gevent_patches():
    out = run_patched("""
        from deadline_worker import DeadlineWorker
        class Unstarted(DeadlineWorker):
            def __init__(self):  # no arbiter, no listening sockets: only the patching is wanted
                self.sockets = []
        Unstarted().patch()
        out["installed"] = getattr(select.poll, "answers_at_once", False)
        no_wait_checks.install()  # again: nothing wrapped twice
        out["still_one_layer"] = type(select.poll()._cooperative).__module__
    """, install=False)
    assert out == {"installed": True, "still_one_layer": "gevent.select"}


def test_an_unpatched_process_is_left_alone():
    import select

    import no_wait_checks

    before = select.poll
    no_wait_checks.install()
    assert select.poll is before
