"""metrics.py and GET /metrics: each contract metric moves when what it counts happens, and only then.

Counters are process-wide, so every test reads a figure before and after and asserts on the difference.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
import responses
from prometheus_client.parser import text_string_to_metric_families

from brains import BrainError, BrainReply
from fixtures import load_fixture, with_ids
from metrics import escalation_kind, failure_kind, webhook_outcome
from telnyx_client import TelnyxClient, TelnyxHTTPError

pytestmark = pytest.mark.both_stores

CALL = "v3:Zq3Vx8LmR2tYp6KbN0cWd4HfJ9sTg1EuA7oXi5MlC3nB8vQy2rDkPw_FhSe"
TOKEN = "metrics-token-0123456789"


def figures(client, headers=None) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_every_webhook_outcome_is_counted_by_event_type(client, post_webhook, keypair, settle, app):
    from fixtures import new_keypair

    def post(*args, **kwargs):
        response = post_webhook(*args, **kwargs)
        response.close()  # as the server does once it has written the answer: the acknowledgement is timed then
        return response

    before = figures(client)
    initiated = load_fixture("call_initiated")
    assert post(initiated).json == {"status": "accepted"}
    assert post(initiated).json == {"status": "duplicate"}
    assert post(with_ids(initiated, event_id=str(uuid.uuid4())), key=new_keypair()[0]).status_code == 401
    assert post(b"{not json").status_code == 400
    assert post(b"x" * 70_000).status_code == 413
    settle(app)
    after = figures(client)
    assert delta(before, after, "receptionist_webhooks_total", event_type="call.initiated", outcome="accepted") == 1
    assert delta(before, after, "receptionist_webhooks_total", event_type="call.initiated", outcome="duplicate") == 1
    assert delta(before, after, "receptionist_webhooks_total", event_type="unparsed",
                 outcome="rejected_signature") == 1
    assert delta(before, after, "receptionist_webhooks_total", event_type="unparsed", outcome="bad_request") == 1
    assert delta(before, after, "receptionist_webhooks_total", event_type="unparsed", outcome="too_large") == 1
    assert delta(before, after, "receptionist_webhook_ack_seconds_count") == 5


def test_a_webhook_refused_while_stopping_counts_as_unavailable(client, post_webhook, app):
    """503 from an error handler (ServiceStopping here; StoreUnavailable alike) is counted too."""
    receptionist = app.extensions["receptionist"]
    receptionist.begin_shutdown()
    before = figures(client)
    response = post_webhook(load_fixture("call_initiated"))
    response.close()
    after = figures(client)
    outcome = "accepted" if receptionist.store.outlives_process else "unavailable"  # Redis takes it for another
    assert response.status_code == (200 if outcome == "accepted" else 503)
    assert delta(before, after, "receptionist_webhooks_total", event_type="call.initiated", outcome=outcome) == 1


def test_a_turn_times_the_reply_and_the_brain(client, post_webhook, scripted_brain, settle, app):
    before = figures(client)
    scripted_brain.enqueue(BrainReply("We're open Saturday nine to one.", "continue", 0.92))
    for name in ["call_initiated", "call_answered", "call_speak_ended", "call_transcription"]:
        post_webhook(load_fixture(name))
        settle(app)
    after = figures(client)
    assert delta(before, after, "receptionist_turn_seconds_count") == 1
    assert 0 <= delta(before, after, "receptionist_turn_seconds_sum") < 5
    assert delta(before, after, "receptionist_brain_seconds_count", brain="ScriptedBrain") == 1
    assert value(after, "receptionist_live_calls") == 1
    assert value(after, "receptionist_ai_enabled") == 1 and value(after, "receptionist_ai_canary_percent") == 100


def test_a_failed_brain_and_a_finished_call_are_counted(client, post_webhook, scripted_brain, settle, app):
    before = figures(client)
    scripted_brain.enqueue(BrainError("model request timed out"))
    for name in ["call_initiated", "call_answered", "call_speak_ended", "call_transcription", "call_hangup"]:
        post_webhook(load_fixture(name))
        settle(app)
    after = figures(client)
    assert delta(before, after, "receptionist_brain_failures_total", brain="ScriptedBrain", reason="timeout") == 1
    assert delta(before, after, "receptionist_escalations_total", reason="brain_failed") == 1
    assert delta(before, after, "receptionist_calls_total", outcome="caller_hung_up") == 1
    assert delta(before, after, "receptionist_ai_calls_total") == 1
    assert value(after, "receptionist_live_calls") == 0


def test_the_ai_gauges_follow_the_switch(client, app):
    app.extensions["receptionist"].switch.change(False, 25, "test")
    found = figures(client)
    assert value(found, "receptionist_ai_enabled") == 0 and value(found, "receptionist_ai_canary_percent") == 25


def test_metrics_token_is_required_when_set(make_app, raw_config):
    client = make_app(raw_config, env={"METRICS_TOKEN": TOKEN}).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert value(figures(client, {"Authorization": f"Bearer {TOKEN}"}), "receptionist_ai_enabled") == 1


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (200, {"status": "accepted"}, "accepted"), (200, {"status": "duplicate"}, "duplicate"),
    (401, None, "rejected_signature"), (400, None, "bad_request"), (415, None, "bad_request"),
    (413, None, "too_large"), (503, None, "unavailable"), (500, None, "error"),
])
def test_webhook_outcome(status, body, outcome):
    assert webhook_outcome(status, body) == outcome


@pytest.mark.parametrize(("label", "reason", "kind"), [
    (escalation_kind, "brain failed: model request timed out", "brain_failed"),
    (escalation_kind, "caller pressed 0", "pressed_zero"),
    (escalation_kind, "transfer failed: TelnyxTimeout", "transfer_failed"),
    (escalation_kind, "call state lost (service restarted)", "state_lost"),
    (escalation_kind, "something new", "other"),
    (failure_kind, "model gave no answer before the deadline", "timeout"),
    (failure_kind, "model API answered HTTP 503", "http_error"),
    (failure_kind, "cannot connect to the model API", "connection"),
    (failure_kind, "model reply is not JSON: 'x'", "bad_reply"),
    (failure_kind, "something else", "error"),
])
def test_free_text_reasons_become_bounded_labels(label, reason, kind):
    """Escalation and brain-failure reasons are free text; their labels come from a short fixed list."""
    assert label(reason) == kind


@responses.activate
def test_telnyx_commands_are_counted_by_verb_and_status(client):
    base = "https://telnyx.invalid/v2"
    telnyx = TelnyxClient("key", base, max_attempts=2, max_backoff=0, sleep=lambda s: None)
    url = f"{base}/calls/{CALL}/actions"
    responses.post(f"{url}/answer", json={"data": {"result": "ok"}})
    responses.post(f"{url}/hangup", status=422, json={"errors": [{"code": "90018", "title": "Call has already ended"}]})
    responses.post(f"{url}/speak", status=500, json={"errors": []})
    before = figures(client)
    assert telnyx.answer(CALL, command_id="a") is True
    assert telnyx.hangup(CALL, command_id="b") is False
    with pytest.raises(TelnyxHTTPError):
        telnyx.speak(CALL, "hi", "Telnyx.KokoroTTS.af", command_id="c")
    after = figures(client)
    assert delta(before, after, "receptionist_telnyx_commands_total", verb="answer", status="ok") == 1
    assert delta(before, after, "receptionist_telnyx_commands_total", verb="hangup", status="call_ended") == 1
    assert delta(before, after, "receptionist_telnyx_commands_total", verb="speak", status="500") == 1  # once, 2 tries
    assert delta(before, after, "receptionist_telnyx_command_seconds_count", verb="speak") == 1


# ---------------------------------------------------------------- several gunicorn workers


def test_every_worker_counts_in_every_scrape(redis_server, tmp_path):
    """Two workers on Redis: each scrape, whichever worker serves it, reports what both of them counted."""
    from simulator.network import Network
    from simulator.service import start_service

    directory = tmp_path / "metrics"
    with Network() as network:
        env = {**network.service_env(), "REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "2",
               "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        overrides = {"redis.key_prefix": f"metrics-{uuid.uuid4().hex[:8]}:"}
        with start_service(env, overrides=overrides) as service:
            wait_for_workers(service, 2)
            for _ in range(30):  # a new connection each: the two workers share them
                body = with_ids(load_fixture("call_hangup"), event_id=str(uuid.uuid4()),
                                call_control_id=f"v3:{uuid.uuid4().hex}")
                raw = json.dumps(body).encode()
                headers = {**network.signer.headers(raw), "Content-Type": "application/json", "Connection": "close"}
                assert requests.post(service.webhook_url, data=raw, headers=headers, timeout=5).status_code == 200
            writers = {path.name.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}
            assert len(writers) == 2, "both workers should have taken webhooks"
            for _ in range(6):
                text = requests.get(f"{service.url}/metrics", headers={"Connection": "close"}, timeout=5).text
                found = {(s.name, tuple(sorted(s.labels.items()))): s.value
                         for f in text_string_to_metric_families(text) for s in f.samples}
                assert value(found, "receptionist_webhooks_total", event_type="call.hangup", outcome="accepted") == 30


def wait_for_workers(service, count: int, timeout_s: float = 10.0) -> None:
    give_up = time.monotonic() + timeout_s
    while len(service.workers()) < count and time.monotonic() < give_up:
        time.sleep(0.05)
    assert len(service.workers()) == count
