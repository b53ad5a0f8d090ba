"""The Flask webhook service: verify, parse, dedupe, hand off, answer 200. `gunicorn 'app:create_app()'`."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

import metrics
from admin import register_admin
from brains import Brain
from brains.intent import IntentBrain
from brains.llm import LLMBrain
from brains.streaming import StreamingLLMBrain
from config import Settings, build_settings, load_settings
from dialog import HANDLERS
from events import BadEvent, parse_event
from receptionist import Receptionist, ServiceStopping
from stores import StoreUnavailable
from telnyx_client import CallControl, TelnyxClient
from webhook_auth import SignatureError, WebhookVerifier, load_public_keys

log = logging.getLogger(__name__)


def create_app(
    config: Settings | Mapping[str, Any] | None = None,
    *,
    telnyx: CallControl | None = None,
    brain: Brain | None = None,
    receptionist: Receptionist | None = None,
) -> Flask:
    """Build the service; anything left None gets the production implementation."""
    settings = _settings(config)
    configure_logging(settings.logging.level)
    verifier = _verifier(settings)
    receptionist = receptionist or Receptionist(settings, telnyx or _telnyx(settings), brain or build_brain(settings))

    max_body_bytes = settings.webhook.max_body_bytes
    app = Flask(__name__)
    # One byte over the limit: werkzeug refuses a larger Content-Length at once, but silently cuts a
    # chunked body (no Content-Length) at the limit; reading one byte more lets the route see it was longer.
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes + 1
    app.extensions["receptionist"] = receptionist
    metrics.instrument_webhooks(app, [*HANDLERS, *metrics.UNHANDLED_EVENT_TYPES])
    metrics.register_metrics_page(app, lambda: shared_figures(receptionist), settings.secrets.metrics_token)
    register_admin(app, receptionist, settings)

    @app.post("/webhooks/telnyx")
    def telnyx_webhook():
        raw = request.get_data(cache=False)
        if len(raw) > max_body_bytes:
            return json_error(413, "body too large")
        if verifier is not None:
            try:
                verifier.verify(raw, request.headers)
            except SignatureError as exc:
                log.warning("webhook rejected: %s", exc)
                return json_error(401, "invalid signature")
        if request.mimetype and not request.is_json:
            return json_error(415, "webhooks are application/json")
        try:
            event = parse_event(raw, received_at=time.time())
        except BadEvent as exc:
            return json_error(400, str(exc))
        g.event_type = event.event_type
        accepted = receptionist.accept(event)
        return jsonify(status="accepted" if accepted else "duplicate")

    @app.get("/healthz")
    def healthz():
        # 503 once a shutdown has begun, so a load balancer or orchestrator stops sending new calls here,
        # and while the store is unreachable, since every webhook would be refused anyway.
        problem = receptionist.store.health()
        if problem is not None:
            return jsonify(status="store_unavailable", error=problem), 503
        if receptionist.stopping:
            return jsonify(status="stopping", **receptionist.stats()), 503
        return jsonify(status="ok", **receptionist.stats())

    @app.errorhandler(ServiceStopping)
    def stopping(exc: ServiceStopping):
        log.info("%s", exc)  # Telnyx delivers it again, to whichever process is serving by then
        return json_error(503, "shutting down")

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable):
        # Logged once per outage by the store, not per request; Telnyx delivers the webhook again.
        return json_error(503, "call store unavailable, retry later")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return json_error(exc.code or 500, exc.description or exc.name)

    return app


def shared_figures(receptionist: Receptionist) -> dict[str, float]:
    """The gauges every worker answers alike (metrics.py): read from the store at scrape time."""
    setting = receptionist.switch.current()
    return {
        "receptionist_live_calls": len(receptionist.calls),
        "receptionist_ai_enabled": float(setting.enabled),
        "receptionist_ai_canary_percent": setting.canary_percent,
    }


def json_error(status: int, message: str):
    """The one shape every error response takes."""
    return jsonify(error=message, status=status), status


def configure_logging(level: str) -> None:
    """One line per record on stdout; installed once even when the factory runs again (tests)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(getattr(handler, "_receptionist", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._receptionist = True  # type: ignore[attr-defined]
        root.addHandler(handler)


def _settings(config: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(config, Settings):
        return config
    if config is None:
        return load_settings()
    return build_settings(config, os.environ)


def _verifier(settings: Settings) -> WebhookVerifier | None:
    if not settings.webhook.verify_signatures:
        log.warning(
            "WEBHOOK SIGNATURE VERIFICATION IS OFF (webhook.verify_signatures: false). "
            "Anyone who can reach this URL can drive calls. Use this only for local development."
        )
        return None
    keys = load_public_keys(settings.secrets.telnyx_public_keys)
    return WebhookVerifier(keys, settings.webhook.timestamp_tolerance_s)


def _telnyx(settings: Settings) -> TelnyxClient:
    if not settings.secrets.telnyx_api_key:
        log.warning("TELNYX_API_KEY is not set: every Call Control command will be refused by Telnyx")
    return TelnyxClient(
        settings.secrets.telnyx_api_key,
        settings.secrets.telnyx_base_url,
        connect_timeout=settings.telnyx.connect_timeout_s,
        read_timeout=settings.telnyx.read_timeout_s,
        max_attempts=settings.telnyx.max_attempts,
        max_backoff=settings.telnyx.max_backoff_s,
        pool_size=settings.calls.workers,
    )


def build_brain(settings: Settings) -> Brain:
    """LLMBrain when OPENAI_API_KEY or OPENAI_BASE_URL is set and ai.enabled, otherwise IntentBrain."""
    if settings.secrets.llm_configured and settings.ai.enabled:
        log.info("brain: LLM (model=%s)", settings.ai.model)
        return StreamingLLMBrain(settings) if settings.ai.stream else LLMBrain(settings)
    log.info("brain: offline intent matcher (LLM needs ai.enabled and OPENAI_API_KEY or OPENAI_BASE_URL)")
    return IntentBrain(settings)
