"""The floor: a bare Flask app whose webhook route answers 200 at once, run under the same gunicorn settings.

Whatever the receptionist's acknowledgement costs beyond this is the service's own work.
`gunicorn 'bench.floor_app:create_app()' --config gunicorn.conf.py`
"""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """Same routes as the service, no work behind them."""
    app = Flask(__name__)

    @app.post("/webhooks/telnyx")
    def telnyx_webhook():
        return {"status": "accepted"}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "live_calls": 0, "queued_events": 0}

    return app
