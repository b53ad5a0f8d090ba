"""Prometheus metrics: what the service counts and times, and the `GET /metrics` page that shows them.

The metric names are a public contract (README, "Operating it"; ops/alerts.yml reads them).

Several gunicorn workers: prometheus-client's multiprocess mode. gunicorn.conf.py gives the workers a fresh
PROMETHEUS_MULTIPROC_DIR before they start; each worker writes its counters and histograms to its own files
there, and /metrics, in whichever worker serves the scrape, adds every worker's files up (a dead worker's
counts stay). What is the same for every worker, the live calls and the AI switch, is not counted per process:
it is read from the shared store when the page is served. Without that variable (one process, tests), the
counters live in the process's memory.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stores import StoreUnavailable

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
WEBHOOK_ENDPOINT = "telnyx_webhook"
# Telnyx events the service receives and acknowledges without acting on them: counted under their own name.
UNHANDLED_EVENT_TYPES = ("call.speak.started", "call.playback.started", "call.playback.ended", "call.recording.saved",
                         "call.machine.detection.ended", "call.gather.ended")

WEBHOOKS = Counter("receptionist_webhooks", "Webhooks answered, by event type and outcome",
                   ["event_type", "outcome"])
WEBHOOK_ACK = Histogram("receptionist_webhook_ack_seconds", "Webhook request received to response written",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5))
TURN = Histogram("receptionist_turn_seconds", "Final transcript received to the first speak of the reply sent",
                 buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13))
BRAIN = Histogram("receptionist_brain_seconds", "Time the brain took to answer one turn (or to fail)", ["brain"],
                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16))
BRAIN_FAILURES = Counter("receptionist_brain_failures", "Brain answers that failed, by reason", ["brain", "reason"])
BRAIN_ANSWERS = Counter("receptionist_brain_answers", "Brain questions asked (answered or failed)", ["brain"])
TELNYX_COMMANDS = Counter("receptionist_telnyx_commands", "Call Control commands, retries included, by outcome",
                          ["verb", "status"])
TELNYX_SECONDS = Histogram("receptionist_telnyx_command_seconds", "One Call Control command, retries included",
                           ["verb"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8))
CALLS = Counter("receptionist_calls", "Finished calls, by outcome", ["outcome"])
AI_CALLS = Counter("receptionist_ai_calls", "Finished calls the assistant handled (AI on for the call)")
ESCALATIONS = Counter("receptionist_escalations", "Calls handed to a person (or a message), by reason", ["reason"])
ROLLBACKS = Counter("receptionist_ai_rollbacks", "Times the rollback guard switched the AI off, by reason",
                    ["reason"])

# Series that alerts watch for a first increase exist from the start, at 0 (ops/alerts.yml uses increase()).
WEBHOOKS.labels("unparsed", "rejected_signature")
for _reason in ("brain_failures", "escalations"):
    ROLLBACKS.labels(_reason)

# A call's outcome (calls.CallState.outcome) as the calls_total label.
CALL_OUTCOMES = {
    "hung_up_by_assistant": "resolved",
    "transferred": "transferred",
    "message_taken": "message_taken",
    "caller_hung_up": "caller_hung_up",
    "silence": "silence",
    "expired": "expired",
}
# The start of an escalation reason (dialog.escalate, receptionist.STATE_LOST) as the escalations_total label.
ESCALATION_REASONS = {
    "caller asked for a person": "asked_for_person",
    "caller pressed 0": "pressed_zero",
    "low brain confidence": "low_brain_confidence",
    "low speech recognition confidence": "low_asr_confidence",
    "turn limit reached": "turn_limit",
    "brain chose transfer": "brain_chose_transfer",
    "brain failed": "brain_failed",
    "ai disabled for this call": "ai_disabled",
    "transfer not answered": "transfer_not_answered",
    "transfer failed": "transfer_failed",
    "caller silent": "caller_silent",
}


# ---------------------------------------------------------------- what the service reports


def turn_answered(seconds: float) -> None:
    TURN.observe(max(0.0, seconds))


def brain_answered(brain: str, seconds: float, failure: str | None) -> None:
    BRAIN.labels(brain).observe(seconds)
    BRAIN_ANSWERS.labels(brain).inc()
    if failure is not None:
        BRAIN_FAILURES.labels(brain, failure).inc()


def telnyx_command(verb: str, status: str, seconds: float) -> None:
    TELNYX_COMMANDS.labels(verb, status).inc()
    TELNYX_SECONDS.labels(verb).observe(seconds)


def call_finished(outcome: str, escalation_reason: str | None, ai: bool) -> None:
    CALLS.labels(CALL_OUTCOMES.get(outcome, "other")).inc()
    if ai:
        AI_CALLS.inc()
    if escalation_reason is not None:
        ESCALATIONS.labels(escalation_kind(escalation_reason)).inc()


def escalation_kind(reason: str) -> str:
    """A bounded label for a free-text escalation reason ("brain failed: timeout" -> "brain_failed")."""
    head = reason.split(":", 1)[0].strip().lower()
    if head.startswith("call state lost"):
        return "state_lost"
    return ESCALATION_REASONS.get(head, "other")


def brain_label(brain: object) -> str:
    """The brain's metric label: `llm`, `intent`, or the class name of another."""
    name = type(brain).__name__
    return {"LLMBrain": "llm", "IntentBrain": "intent"}.get(name, name)


# Words of a BrainError (brains/llm.py) -> the brain_failures_total reason label; the first match wins.
FAILURE_KINDS = (
    ("deadline", "timeout"),
    ("timed out", "timeout"),
    ("http", "http_error"),
    ("connect", "connection"),
    ("model reply", "bad_reply"),
    ("no content", "bad_reply"),
    ("no choices", "bad_reply"),
)


def failure_kind(reason: str) -> str:
    """A bounded metric label for a brain failure's free-text reason."""
    lowered = reason.lower()
    return next((kind for words, kind in FAILURE_KINDS if words in lowered), "error")


def ai_rolled_back(reason: str) -> None:
    ROLLBACKS.labels(reason).inc()


# ---------------------------------------------------------------- webhooks (hooks around the route)

# Outcomes by HTTP status; a 200 says accepted or duplicate in its body.
_OUTCOME_BY_STATUS = {401: "rejected_signature", 413: "too_large", 400: "bad_request", 415: "bad_request",
                      503: "unavailable"}


def webhook_outcome(status: int, body: dict | None) -> str:
    if status == 200:
        return "duplicate" if (body or {}).get("status") == "duplicate" else "accepted"
    return _OUTCOME_BY_STATUS.get(status, "error")


def instrument_webhooks(app: Flask, known_event_types: Iterable[str]) -> None:
    """Count and time every webhook request; event types outside `known_event_types` count as "other"."""
    known = frozenset(known_event_types)

    @app.before_request
    def started() -> None:
        if request.endpoint == WEBHOOK_ENDPOINT:
            g.webhook_started = time.perf_counter()

    @app.after_request
    def answered(response: Response) -> Response:
        started_at = g.pop("webhook_started", None)
        if started_at is None:
            return response
        event_type = g.get("event_type")
        label = event_type if event_type in known else ("other" if event_type else "unparsed")
        body = response.get_json(silent=True) if response.status_code == 200 else None
        WEBHOOKS.labels(label, webhook_outcome(response.status_code, body)).inc()
        response.call_on_close(lambda: WEBHOOK_ACK.observe(time.perf_counter() - started_at))
        return response


# ---------------------------------------------------------------- GET /metrics


SHARED_GAUGES = {
    "receptionist_live_calls": "Calls in progress (all workers and instances)",
    "receptionist_ai_enabled": "1 when the assistant answers calls, 0 when every call goes to a person",
    "receptionist_ai_canary_percent": "Share of callers who get the assistant while it is on",
}


class SharedFigures(Collector):
    """Gauges read from the shared store at scrape time: the same answer whichever worker is asked."""

    def __init__(self, read: Callable[[], dict[str, float]]):
        self.read = read

    def collect(self):
        try:
            figures = self.read()
        except StoreUnavailable as exc:  # a scrape while Redis is away: leave the gauges out, keep the counters
            log.warning("metrics: live calls and AI switch left out: %s", exc)
            return
        for name, value in figures.items():
            gauge = GaugeMetricFamily(name, SHARED_GAUGES[name])
            gauge.add_metric([], value)
            yield gauge


def counters_registry() -> CollectorRegistry:
    """Every worker's counters (multiprocess mode), or this process's own."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def register_metrics_page(app: Flask, shared: Callable[[], dict[str, float]], token: str = "") -> None:
    """`GET /metrics`; with `token` set, only for `Authorization: Bearer <token>`."""
    figures = CollectorRegistry(auto_describe=False)
    figures.register(SharedFigures(shared))

    @app.get("/metrics")
    def metrics_page():
        if token and not bearer_matches(request.headers.get("Authorization", ""), token):
            return Response("unauthorized\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
        body = generate_latest(counters_registry()) + generate_latest(figures)
        return Response(body, content_type=CONTENT_TYPE_LATEST)


def bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
