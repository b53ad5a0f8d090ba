"""The operator page at /admin and the AI switch for scripts at /admin/ai; nothing at all unless ADMIN_TOKEN is set.

The page: live calls, recent calls with their transcripts (as masked in the call log), messages to return, the
AI switch, and small charts. Server-rendered Jinja, a stylesheet of its own, no JavaScript. Everything a caller
said is untrusted: Jinja escapes it, and the Content-Security-Policy allows no script at all, so even a mistake
in a template could not run one.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, abort, flash, jsonify, redirect, render_template, request, session, url_for

from admin import auth, call_history, charts
from ai_switch import AiSetting, AiSwitch
from call_log import mask_number
from config import Settings
from metrics import bearer_matches
from receptionist import Receptionist

LIVE_CALLS_SHOWN = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def register_admin(app: Flask, receptionist: Receptionist, settings: Settings) -> None:
    """Mount /admin when ADMIN_TOKEN is set; without it every /admin URL is a plain 404."""
    token = settings.secrets.admin_token
    if not token:
        return
    auth.configure_sessions(app, token)
    app.register_blueprint(_blueprint(receptionist, settings, token))


def _blueprint(receptionist: Receptionist, settings: Settings, token: str) -> Blueprint:
    pages = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")
    limiter = auth.SignInLimiter()
    switch, shared, log_path = receptionist.switch, receptionist.store.shared, settings.call_log.path
    for name, function in FILTERS.items():
        pages.add_app_template_filter(function, name)

    @pages.after_request
    def headers(response):
        response.headers.update(SECURITY_HEADERS)
        return response

    @pages.before_request
    def guard():
        if request.endpoint in ("admin.login", "admin.static", "admin.ai_api"):
            return None
        if not auth.signed_in():
            return redirect(url_for("admin.login"))
        if request.method == "POST" and not auth.csrf_ok():
            abort(400, "the form expired: reload the page and try again")
        return None

    @pages.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return render_template("admin/login.html", csrf=auth.csrf_token())
        address = request.remote_addr or "unknown"
        wait = limiter.retry_after(address)
        if wait:
            return _refused(429, f"Too many failed sign-ins. Try again in {math.ceil(wait / 60)} minutes.",
                            {"Retry-After": str(wait)})
        if not auth.csrf_ok():
            return _refused(400, "The form expired: try again.")
        if not auth.token_matches(request.form.get("token", ""), token):
            limiter.failed(address)
            return _refused(401, "That token is not right.")
        auth.sign_in()
        return redirect(url_for("admin.dashboard"))

    @pages.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("admin.login"))

    @pages.get("/")
    def dashboard():
        records = call_history.recent_calls(log_path)
        return render_template(
            "admin/dashboard.html", csrf=auth.csrf_token(), setting=switch.current(), history=switch.history()[:10],
            live=[_live_row(state) for state in receptionist.calls.snapshot(LIVE_CALLS_SHOWN)],
            calls=records[:50], messages=call_history.messages(records, shared)[:50],
            charts=[charts.latency_chart(records), charts.outcomes_chart(records),
                    charts.assistant_share_chart(records)],
        )

    @pages.get("/calls/<call_control_id>")
    def call(call_control_id: str):
        record = call_history.find_call(call_history.recent_calls(log_path), call_control_id)
        if record is None:
            abort(404, "no such call in the recent call log")
        return render_template("admin/call.html", csrf=auth.csrf_token(), call=record)

    @pages.post("/messages/called-back")
    def called_back():
        call_history.mark_called_back(shared, request.form.get("key", "")[:300])
        flash("Marked as called back.")
        return redirect(url_for("admin.dashboard") + "#messages")

    @pages.post("/switch")
    def switch_form():
        enabled = request.form.get("enabled") == "on"
        try:
            percent = _percent(request.form.get("canary_percent", ""))
        except ValueError as exc:
            flash(str(exc))
            return redirect(url_for("admin.dashboard"))
        switch.change(enabled, percent, f"operator page ({request.remote_addr})")
        flash(f"AI {'on' if enabled else 'off'} for new calls, canary {percent:g}%.")
        return redirect(url_for("admin.dashboard"))

    @pages.route("/ai", methods=["GET", "POST"])
    def ai_api():
        return _ai_api(switch, token)

    return pages


def _refused(status: int, message: str, headers: dict[str, str] | None = None):
    return render_template("admin/login.html", csrf=auth.csrf_token(), error=message), status, headers or {}


def _percent(text: Any) -> float:
    """A canary share from a form or JSON: a number from 0 to 100."""
    if isinstance(text, bool):
        raise ValueError("canary_percent must be a number from 0 to 100")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError("canary_percent must be a number from 0 to 100") from None
    if not 0 <= value <= 100:
        raise ValueError("canary_percent must be a number from 0 to 100")
    return value


def _ai_api(switch: AiSwitch, token: str):
    """GET: the switch as it is; POST {"enabled": bool, "canary_percent": 0-100}: change it. Bearer only."""
    if not bearer_matches(request.headers.get("Authorization", ""), token):
        return jsonify(error="Authorization: Bearer <ADMIN_TOKEN> required", status=401), 401
    if request.method == "GET":
        return jsonify(_setting_json(switch.current()))
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        return jsonify(error='expected JSON {"enabled": true|false, "canary_percent": 0-100}', status=400), 400
    try:
        percent = _percent(body.get("canary_percent", switch.current().canary_percent))
    except ValueError as exc:
        return jsonify(error=str(exc), status=400), 400
    setting = switch.change(body["enabled"], percent, f"api ({request.remote_addr})")
    return jsonify(_setting_json(setting))


def _setting_json(setting: AiSetting) -> dict[str, Any]:
    return {"enabled": setting.enabled, "canary_percent": setting.canary_percent, "changed_at": setting.changed_at,
            "source": setting.source, "reason": setting.reason, "tripped": setting.tripped}


def _live_row(state) -> dict[str, Any]:
    return {"call_control_id": state.call_control_id, "caller": mask_number(state.caller), "phase": state.phase.value,
            "turns": len(state.turns), "ai": state.ai,
            "duration_s": int(time.time() - state.started_at) if state.started_at else 0}


# ---------------------------------------------------------------- how the templates show times


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "start-up (config)"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(iso: str | None) -> str:
    """A call-log timestamp ("2026-12-03T05:31:02.123+00:00") as "2026-12-03 05:31:02"."""
    return str(iso or "")[:19].replace("T", " ")


def _ms(value: float | None) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def _slowest(turns: list[dict[str, Any]]) -> str:
    latencies = [turn.get("response_ms") for turn in turns if isinstance(turn.get("response_ms"), int | float)]
    return _ms(max(latencies)) if latencies else "-"


FILTERS = {"when": _when, "short": _short, "ms": _ms, "slowest": _slowest}
