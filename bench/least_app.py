"""The least a receptionist could do for the ack step's webhooks, and nothing more: a lower bound, not a service.

For each webhook it checks the signature, parses the event and sends the Call Control commands the event calls
for, at once, on a greenlet of its own after the acknowledgement: `answer` for `call.initiated`; `speak` and
`transcription_start` for `call.answered`; nothing for `call.hangup`. No duplicate check, no call state, no
per-call ordering, no store, no retries, no log. Any service that answers its calls does at least this (with the
`requests` client the service's design calls for), so the rates at which this app's acknowledgements already miss
the goal (2x the floor) are out of reach for any implementation on the same machine: bench/ack.py measures it
between the floor and the service.
`gunicorn 'bench.least_app:create_app()' --config gunicorn.conf.py` with TELNYX_PUBLIC_KEY, TELNYX_API_KEY and
TELNYX_BASE_URL set (the simulated network's).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any

import requests
from flask import Flask, request
from requests.adapters import HTTPAdapter

from config import CallsConfig
from webhook_auth import SignatureError, WebhookVerifier, load_public_key

COMMANDS = {
    "call.initiated": [("answer", {})],
    "call.answered": [
        ("speak", {"payload": "Thanks for calling.", "voice": "female", "language": "en-US"}),
        ("transcription_start", {
            "transcription_engine": "Google",
            "transcription_engine_config": {"transcription_engine": "Google", "language": "en"},
            "transcription_tracks": "inbound",
        }),
    ],
}


def create_app() -> Flask:
    app = Flask(__name__)
    verifier = WebhookVerifier(load_public_key(os.environ["TELNYX_PUBLIC_KEY"]))
    base_url = os.environ["TELNYX_BASE_URL"].rstrip("/")
    # Set up as cheaply as the service's own client: connections kept for as many commands as it runs at once
    # (calls.workers), and the environment (proxies, netrc) not read again for every request.
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_maxsize=CallsConfig().workers))
    session.headers["Authorization"] = f"Bearer {os.environ['TELNYX_API_KEY']}"

    def send(call_control_id: str, commands: list[tuple[str, dict[str, Any]]]) -> None:
        for action, body in commands:
            # A bound, not a service: a command that fails is not retried; bench/ack.py counts the calls answered.
            with contextlib.suppress(requests.RequestException):
                session.post(f"{base_url}/calls/{call_control_id}/actions/{action}", json=body, timeout=5).close()

    @app.post("/webhooks/telnyx")
    def telnyx_webhook():
        body = request.get_data()
        try:
            verifier.verify(body, request.headers)
        except SignatureError:
            return {"error": "bad signature"}, 401
        data = json.loads(body)["data"]
        commands = COMMANDS.get(data["event_type"])
        if commands:
            threading.Thread(target=send, args=(data["payload"]["call_control_id"], commands), daemon=True).start()
        return {"status": "accepted"}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "live_calls": 0, "queued_events": 0}

    return app
