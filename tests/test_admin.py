"""admin/: the operator page. Sign-in, the session cookie, CSRF, the brake on guessing, what each view shows,
and that nothing a caller said can run in the page. tests/test_admin_browser.py drives it in a real browser.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest

from admin import call_history, charts
from admin.auth import SignInLimiter
from stores.state_file import StateFile

ADMIN = "admin-token-0123456789abcdef"
XSS = '<img src=x onerror=alert(1)> and <script>alert("x")</script>'
CALL = "v3:admin-test-call"


def record(call_control_id: str = CALL, **fields) -> dict:
    base = {
        "call_control_id": call_control_id, "caller": "+1********11", "started_at": "2026-12-03T05:00:00+00:00",
        "ended_at": "2026-12-03T05:01:00+00:00", "outcome": "hung_up_by_assistant", "ai": True,
        "transferred_to": None, "escalation_reason": None,
        "turns": [{"transcript": "what are your hours", "asr_confidence": 0.9, "brain_confidence": 0.9,
                   "action": "continue", "reply": "Eight to five.", "response_ms": 420.5}],
        "messages": [],
    }
    return {**base, **fields}


@pytest.fixture
def call_log(raw_config):
    path = raw_config["call_log"]["path"]

    def write(*records: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            for item in records:
                f.write(json.dumps(item) + "\n")

    return write


@pytest.fixture
def admin_app(make_app, raw_config, telnyx, scripted_brain):
    return make_app(raw_config, telnyx=telnyx, brain=scripted_brain, env={"ADMIN_TOKEN": ADMIN})


@pytest.fixture
def browser(admin_app):
    return admin_app.test_client()


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, token: str = ADMIN):
    form = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"csrf_token": csrf_of(form), "token": token})


@pytest.fixture
def signed_in(browser):
    assert sign_in(browser).status_code == 302
    return browser


# ---------------------------------------------------------------- sign-in and session


def test_the_page_wants_a_sign_in(browser):
    response = browser.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/login")


def test_sign_in_sets_a_strict_http_only_cookie_and_nothing_in_the_url(browser):
    response = sign_in(browser)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert ADMIN not in cookie
    assert browser.get("/admin/").status_code == 200


def test_the_cookie_is_secure_off_loopback(browser):
    form = browser.get("/admin/login", base_url="https://ops.example.com").get_data(as_text=True)
    response = browser.post("/admin/login", data={"csrf_token": csrf_of(form), "token": ADMIN},
                            base_url="https://ops.example.com")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_token_is_refused(browser):
    response = sign_in(browser, "not-the-token-at-all")
    assert response.status_code == 401 and "not right" in response.get_data(as_text=True)
    assert browser.get("/admin/").status_code == 302


def test_repeated_failures_are_rate_limited_even_for_the_right_token(browser):
    for _ in range(5):
        assert sign_in(browser, "guess-guess-guess-guess").status_code == 401
    response = sign_in(browser)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0


def test_a_form_without_its_csrf_token_is_refused(signed_in, admin_app):
    response = signed_in.post("/admin/switch", data={"enabled": "off", "canary_percent": "100"})
    assert response.status_code == 400
    assert admin_app.extensions["receptionist"].switch.current().enabled is True
    assert signed_in.post("/admin/login", data={"token": ADMIN}).status_code == 400


def test_sign_out_ends_the_session(signed_in):
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert signed_in.post("/admin/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert signed_in.get("/admin/").status_code == 302


def test_security_headers_allow_no_script(signed_in):
    headers = signed_in.get("/admin/").headers
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------- what the page shows


def test_the_dashboard_shows_calls_messages_and_charts(signed_in, call_log):
    call_log(record("v3:one"), record("v3:two", outcome="message_taken", escalation_reason="transfer not answered",
                                      messages=["please call me back about Friday"]))
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert page.count('href="/admin/calls/v3:') == 2
    assert "please call me back about Friday" in page and "Mark called back" in page
    assert page.count("<svg") == 3 and "<rect" in page
    assert "transfer not answered" in page and "420 ms" in page


def test_one_call_shows_its_transcript_latency_and_outcome(signed_in, call_log):
    call_log(record(escalation_reason="caller asked for a person", outcome="transferred",
                    transferred_to="front_desk"))
    page = signed_in.get(f"/admin/calls/{CALL}").get_data(as_text=True)
    assert "what are your hours" in page and "Eight to five." in page and "reply after 420 ms" in page
    assert "transferred" in page and "caller asked for a person" in page


def test_an_unknown_call_is_a_404(signed_in):
    assert signed_in.get("/admin/calls/v3:nope").status_code == 404


def test_what_a_caller_said_is_escaped(signed_in, call_log):
    call_log(record(turns=[{"transcript": XSS, "reply": XSS, "response_ms": 1}], messages=[XSS],
                    escalation_reason=XSS))
    for url in ("/admin/", f"/admin/calls/{CALL}"):
        page = signed_in.get(url).get_data(as_text=True)
        assert "<img src=x" not in page and "<script>" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_marking_a_message_called_back(signed_in, call_log, admin_app):
    call_log(record(messages=["call me"]))
    page = signed_in.get("/admin/").get_data(as_text=True)
    response = signed_in.post("/admin/messages/called-back", data={"csrf_token": csrf_of(page), "key": f"{CALL}#0"})
    assert response.status_code == 302
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert "called back" in page and "Mark called back" not in page
    shared = admin_app.extensions["receptionist"].store.shared
    assert call_history.called_back_at(shared, f"{CALL}#0") is not None


def test_the_switch_form_round_trip(signed_in, admin_app):
    page = signed_in.get("/admin/").get_data(as_text=True)
    signed_in.post("/admin/switch", data={"csrf_token": csrf_of(page), "enabled": "off", "canary_percent": "30"})
    setting = admin_app.extensions["receptionist"].switch.current()
    assert (setting.enabled, setting.canary_percent) == (False, 30.0) and setting.source.startswith("operator page")
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert "The assistant is <strong>off</strong>" in page
    signed_in.post("/admin/switch", data={"csrf_token": csrf_of(page), "enabled": "on", "canary_percent": "500"})
    assert admin_app.extensions["receptionist"].switch.current().enabled is False  # refused: 500%
    assert "canary_percent must be a number from 0 to 100" in signed_in.get("/admin/").get_data(as_text=True)


def test_a_tripped_guard_is_shown(signed_in, admin_app):
    admin_app.extensions["receptionist"].switch.change(False, 100, "rollback guard", "brain failed on 80% of calls")
    page = signed_in.get("/admin/").get_data(as_text=True)
    assert 'id="tripped"' in page and "brain failed on 80% of calls" in page


# ---------------------------------------------------------------- the parts


def test_the_call_log_is_read_newest_first_skipping_bad_lines(tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(record("v3:a")) + "\nnot json\n[1]\n" + json.dumps(record("v3:b")) + "\n{\"cut")
    assert [r["call_control_id"] for r in call_history.recent_calls(str(path))] == ["v3:b", "v3:a"]
    assert call_history.recent_calls(str(tmp_path / "missing.jsonl")) == []
    assert call_history.recent_calls(None) == []


def test_lines_that_are_not_calls_are_not_listed_as_calls(tmp_path):
    """The call log also holds a recording saved after its call and message deliveries' statuses."""
    path = tmp_path / "calls.jsonl"
    others = [{"record": "recording", "call_control_id": "v3:a", "recording_url": "https://x/r.mp3"},
              {"record": "message_delivery", "call_control_id": "v3:a", "status": "delivered"}]
    path.write_text("\n".join(json.dumps(line) for line in [record("v3:a"), *others]) + "\n")
    assert [r["call_control_id"] for r in call_history.recent_calls(str(path))] == ["v3:a"]


def test_messages_carry_their_marks(tmp_path):
    marks = StateFile(str(tmp_path / "state.json"))
    records = [record("v3:a", messages=["one", "two"])]
    call_history.mark_called_back(marks, "v3:a#1", clock=lambda: 5.0)
    found = call_history.messages(records, marks)
    assert [(m.text, m.called_back_at) for m in found] == [("one", None), ("two", 5.0)]


def test_charts_count_what_the_log_says():
    records = [record(), record(outcome="transferred", escalation_reason="caller pressed 0"), record(ai=False)]
    latency = charts.latency_chart(records)
    assert [bar.title for bar in latency.bars] == ["<500ms: 3"]
    share = charts.assistant_share_chart(records)
    assert [bar.title for bar in share.bars] == ["by the assistant: 1 (33%)", "handed to a person: 1 (33%)",
                                                 "AI off: 1 (33%)"]
    day = charts.outcomes_chart(records, today=datetime(2026, 12, 3, tzinfo=UTC))
    assert {bar.title for bar in day.bars} == {"2026-12-03 resolved: 2", "2026-12-03 transferred: 1"}
    assert charts.latency_chart([]).empty


def test_the_limiter_forgets_old_failures():
    now = [0.0]
    limiter = SignInLimiter(attempts=2, window_s=60, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") > 0 and limiter.retry_after("b") == 0
    now[0] = 61.0
    assert limiter.retry_after("a") == 0


@pytest.mark.both_stores
def test_live_calls_are_listed_from_the_store(make_app, raw_config, telnyx, scripted_brain, keypair, settle):
    from fixtures import load_fixture, sign

    app = make_app(raw_config, telnyx=telnyx, brain=scripted_brain, env={"ADMIN_TOKEN": ADMIN})
    client = app.test_client()
    for name in ("call_initiated", "call_answered"):
        raw = json.dumps(load_fixture(name)).encode()
        client.post("/webhooks/telnyx", data=raw, headers=sign(raw, keypair[0], str(int(time.time()))),
                    content_type="application/json")
        settle(app)
    sign_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    live = page.split('id="live"')[1].split("</section>")[0]
    assert "Live calls <span class=\"muted\">(1)</span>" in live
    assert "+1********11" in live and "conversing" in live and "+13125550111" not in page


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "METRICS_TOKEN"])
def test_a_short_token_refuses_to_start(raw_config, name):
    from config import ConfigError, build_settings

    raw_config["webhook"]["verify_signatures"] = False
    with pytest.raises(ConfigError, match=f"{name}: at least 16 characters"):
        build_settings(raw_config, {name: "letmein"})
