"""Where the service's CPU goes: py-spy samples the gunicorn workers from outside.

Only stacks holding the GIL are kept (`--gil`): one worker process runs Python on at most one core at a
time, so the GIL's time is what sets capacity. py-spy pauses the worker for each sample, so the run being
profiled is not one whose latency the report quotes.

py-spy comes from requirements-bench.txt, which `make bench` installs (tests do not need it).
Stacks are folded into what a reader cares about: the webhook request (gunicorn, Flask, the route's
verify / parse / dedupe / hand-off), the per-call workers (dialog, brain, Call Control HTTP, logging),
in Redis mode the lease dispatcher and every call into the Redis client, and everything else.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.modes import MEMORY, Mode

SAMPLE_HZ = 250

# (label, a frame that marks a stack as belonging to it). First match wins, so the order matters.
AREAS = (
    ("webhook route: telnyx_webhook", "telnyx_webhook (app.py"),
    ("webhook request: gunicorn + Flask around the route", "handle (gunicorn/workers/base_async.py"),
    ("call workers: turns (dialog, brain, Call Control)", "_drain (workers.py"),
    ("call workers: turns (dialog, brain, Call Control)", "_run_call (stores/leases.py"),  # Redis mode
    ("lease dispatcher: claims, renewals, timers (Redis mode)", "_dispatch (stores/leases.py"),
    ("gunicorn: accept / keep-alive, gevent's hub", "gevent/"),
    ("timers (scheduler thread)", "_run (workers.py"),
)
# Inside the outgoing Call Control requests: where the HTTP client spends its time.
HTTP_PARTS = (
    ("proxy / netrc lookups from the environment (requests trust_env)", ("merge_environment_settings",
                                                                          "get_netrc_auth", "get_environ_proxies")),
    ("cookie handling", ("cookies.py", "cookiejar.py")),
    ("response header parsing (http.client / email)", ("parse_headers", "email/")),
    ("request preparation (requests)", ("prepare_request", "models.py")),
    ("urllib3 connection pool", ("urllib3/",)),
    ("socket send / receive", ("socket.py", "http/client.py")),
)
# Parts of interest inside an area: (label, frame substring). A stack counts for the first that matches.
PARTS = (
    ("Redis client (redis-py: commands, scripts, connections)", "redis/"),
    ("Ed25519 signature check", "verify (webhook_auth.py"),
    ("JSON parse of the event", "parse_event (events.py"),
    ("dedupe + queue (receptionist.accept)", "accept (receptionist.py"),
    ("jsonify response", "jsonify (flask"),
    ("logging", "logging/__init__.py"),
    ("Call Control HTTP (requests/urllib3)", "_post (telnyx_client.py"),
    ("brain (intent matcher)", "brains/intent.py"),
    ("brain (LLM client)", "brains/llm.py"),
    ("dialog.decide", "decide (dialog.py"),
    ("call log write", "call_log.py"),
    ("werkzeug request parsing", "werkzeug/"),
    ("Flask dispatch", "flask/app.py"),
    ("gunicorn HTTP parser", "gunicorn/http/"),
)


def py_spy() -> str | None:
    """The py-spy executable beside this Python (`make bench` installs requirements-bench.txt), or on PATH."""
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


@contextmanager
def record(pids: tuple[int, ...], seconds: float, result: dict) -> Iterator[None]:
    """Sample every process in `pids` for `seconds` while the body runs; fill `result` with the folded summary.

    With several workers their stacks are pooled; GIL busy is then the average over the workers.
    """
    executable = py_spy()
    if executable is None:
        result["error"] = "py-spy is not installed (make bench installs requirements-bench.txt)"
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        raws = [Path(tmp) / f"stacks-{pid}.txt" for pid in pids]
        spies = [subprocess.Popen([executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                                   "--rate", str(SAMPLE_HZ), "--format", "raw", "--gil", "--output", str(raw)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for pid, raw in zip(pids, raws, strict=True)]
        try:
            yield
        finally:
            errors = [_finish(spy, seconds) for spy in spies]
        if all(raw.exists() for raw in raws):
            result.update(summarise("\n".join(raw.read_text() for raw in raws)))
            result["sample_hz"] = SAMPLE_HZ
            result["processes"] = len(pids)
            result["gil_busy"] = round(result["samples"] / (SAMPLE_HZ * max(1, round(seconds)) * len(pids)), 3)
        else:
            result["error"] = f"py-spy wrote nothing: {' '.join(errors)[-300:]}"


def _finish(spy: subprocess.Popen, seconds: float) -> str:
    """Wait for one py-spy to write its file; its stderr, for the error message."""
    try:
        _, err = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    return err.decode(errors="replace")


def summarise(folded: str, top: int = 12) -> dict:
    """Shares of all samples by area, by part within each area, and the hottest leaf functions."""
    stacks = _parse(folded)
    total = sum(stacks.values()) or 1
    areas: Counter = Counter()
    parts: dict[str, Counter] = {}
    leaves: Counter = Counter()
    http: Counter = Counter()
    for stack, count in stacks.items():
        if any("_post (telnyx_client.py" in frame for frame in stack):
            http[_http_part(stack)] += count
        area = next((label for label, mark in AREAS if any(mark in frame for frame in stack)), "other")
        areas[area] += count
        part = next((label for label, mark in PARTS if any(mark in frame for frame in stack)), "rest")
        parts.setdefault(area, Counter())[part] += count
        leaves[stack[-1]] += count
    share = lambda n: round(100 * n / total, 1)  # noqa: E731 - a one-line helper reads best here
    return {
        "samples": total,
        "areas": {label: share(n) for label, n in areas.most_common()},
        "parts": {area: {label: share(n) for label, n in counter.most_common()} for area, counter in parts.items()},
        "call_control_http": {label: share(n) for label, n in http.most_common()},
        "hottest_functions": {frame: share(n) for frame, n in leaves.most_common(top)},
    }


def _http_part(stack: tuple[str, ...]) -> str:
    for label, marks in HTTP_PARTS:
        if any(mark in frame for frame in stack for mark in marks):
            return label
    return "rest (requests Session.request, JSON encoding)"


def _parse(folded: str) -> Counter:
    """py-spy's raw format: `frame;frame;...;leaf count` per line, root first."""
    stacks: Counter = Counter()
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def route(mode: Mode = MEMORY, seconds: float = 8.0, rate: float = 300.0) -> dict:
    """The webhook path alone: realistic signed webhooks at a fixed rate (see ack.py)."""
    from bench import ack, servers
    from bench.rategen import Generator

    result: dict = {"load": f"{rate:.0f} webhooks/s for {seconds:.0f} s (call.initiated, call.answered, call.hangup)"}
    with ack.ack_network() as (network, capture), Generator() as generator, \
            servers.service(network.service_env(), mode=mode) as service:
        shots, answerable = ack.call_shots(network, capture, service.webhook_url, rate, seconds + 1)
        with record(service.worker_pids, seconds, result):
            ack.measure_rate(generator, service, network, shots, answerable, rate)
    return result


def turns(mode: Mode = MEMORY, concurrency: int = 100, seconds: float = 10.0) -> dict:
    """Whole calls: webhooks plus the per-call workers that run each turn and send its commands."""
    from bench import calls

    load = calls.CallLoad(concurrency=concurrency, calls=concurrency, turns=3, speed=0.5, ramp_s=2.0)
    result: dict = {"load": f"{concurrency} concurrent calls, speech at 2x real pace, {seconds:.0f} s sampled"}
    calls.run(load, mode, during=lambda server: record(server.worker_pids, seconds, result))
    return result
