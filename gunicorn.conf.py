"""Gunicorn settings, as deployed (the Procfile and `make run` use this file).

Without REDIS_URL: one worker process, many threads. Call state lives in that process's memory, so a
second worker would not see the calls the first one holds; more than one is refused at startup.
With REDIS_URL: as many workers as cores by default (WEB_CONCURRENCY overrides), sharing the calls in
Redis (stores/redis.py). Each worker serves its connections as gevent greenlets (deadline_worker.py), so
slow or idle clients cannot hold every webhook away; replies are computed in the background.

On SIGTERM (a deploy or a restart) the worker answers every request it has already accepted, then
gives the background work already queued, such as a reply being computed or a speak to send, up to
`graceful_timeout - DRAIN_MARGIN_S` seconds to finish. In memory, webhooks for calls it does not hold
are refused with 503 (Telnyx delivers them again) and timers that have not fired are lost. On Redis,
webhooks are still taken (they wait in Redis), each call is handed back after its current event, and
timers fire from Redis in whichever process is serving. See RELIABILITY.md for what a restart costs.
"""

import gc
import os
import shutil
import sys
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# gunicorn's own convention. Without Redis, more than one is refused below: call state lives in one process.
workers = int(os.environ.get("WEB_CONCURRENCY") or (os.cpu_count() or 1 if os.environ.get("REDIS_URL") else 1))
worker_class = "deadline_worker.DeadlineWorker"
# Connections held at once per worker, idle ones included; each costs a greenlet and a file descriptor.
worker_connections = int(os.environ.get("GUNICORN_CONNECTIONS", "4096"))
timeout = 30
graceful_timeout = 20
# Also the deadline for a request's line and headers: a connection that sends none within it is closed.
keepalive = 5
accesslog = None
# No control socket: it lives at one fixed path per user, which clashes when several instances run.
control_socket_disable = True

# Kept back from graceful_timeout: about 2 s while the worker notices the signal and lets requests in progress
# finish (it looks once a second; idle connections close at once, deadline_worker.py), the rest for a reply
# already running when the drain gives up. The master SIGKILLs at graceful_timeout.
DRAIN_MARGIN_S = 5.0


ONE_WORKER_ONLY = (
    "refusing to start with {workers} worker processes without REDIS_URL: call state lives in one process's "
    "memory, so a second worker would answer webhooks for calls it does not hold (duplicate speech, lost "
    "turns). Run one worker (WEB_CONCURRENCY=1, no -w), or set REDIS_URL to share calls between workers "
    "(README, \"Scaling out\")."
)


def on_starting(server):
    """Without Redis, refuse several workers however they were asked for (WEB_CONCURRENCY, -w, --workers)."""
    if server.cfg.workers != 1 and not os.environ.get("REDIS_URL"):
        server.log.error(ONE_WORKER_ONLY.format(workers=server.cfg.workers))
        sys.exit(1)
    metrics_directory()


# ---------------------------------------------------------------- /metrics across workers (metrics.py)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_DIR = []  # the directory this master made, removed when it exits


def metrics_directory():
    """Every worker writes its counters under one directory, fresh for this run, that /metrics adds up.

    An operator's PROMETHEUS_MULTIPROC_DIR is emptied of the previous run's files; without one, a temporary
    directory is made. Set before the workers start, so that they import prometheus-client in that mode.
    """
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
        return
    directory = tempfile.mkdtemp(prefix="receptionist-metrics-")
    _OWN_METRICS_DIR.append(directory)
    os.environ[MULTIPROC_DIR] = directory


def child_exit(server, worker):
    """A worker is gone: its live gauges no longer count (its counters and histograms still do)."""
    if os.environ.get(MULTIPROC_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for directory in _OWN_METRICS_DIR:
        shutil.rmtree(directory, ignore_errors=True)


def post_worker_init(worker):
    """The app is loaded: what it holds now (modules, the SDKs, the config, the brain) lives as long as the worker.

    Frozen out of the garbage collector's reach, so that its full collections, which otherwise walk all of it,
    stop pausing every call in the worker: one took 79 ms in the middle of 50 streamed calls on the benchmark
    machine (BENCHMARKS.md, section 7).
    """
    gc.freeze()


def _receptionist(worker):
    """The Receptionist behind the worker's app, or None (app not loaded, or not ours)."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    return extensions.get("receptionist")


def pre_request(worker, req):
    """A request served after SIGTERM: from now on, calls this process does not hold are refused."""
    receptionist = _receptionist(worker)
    if not worker.alive and receptionist is not None:
        receptionist.begin_shutdown()


def worker_exit(server, worker):
    """In the exiting worker, after its last request: finish the queued call work, bounded."""
    receptionist = _receptionist(worker)
    if worker.pid != os.getpid() or receptionist is None:
        return  # the master also calls this hook when it reaps a worker
    receptionist.drain(max(1.0, worker.cfg.graceful_timeout - DRAIN_MARGIN_S))
