"""The rollback, end to end: the model starts failing in the middle of traffic and the guard switches the AI off.

The service runs as deployed (gunicorn.conf.py) against the simulated Telnyx network and the stand-in model
(simulator/model.py); in memory with one worker, and on Redis with two workers, where the calls that fill the
guard's window are finished by either worker. The same run is what `make demo` shows (simulator/rollback.py).
"""

from __future__ import annotations

import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from simulator.model import StandInModel
from simulator.network import Network, NetworkOptions
from simulator.rollback import OVERRIDES, run_rollback
from simulator.service import start_service

ADMIN = "rollback-admin-token-0123456789"


@pytest.mark.both_stores
def test_the_guard_trips_when_the_model_fails_mid_traffic(store_env):
    overrides = {**OVERRIDES, "redis.key_prefix": f"rollback-{uuid.uuid4().hex[:8]}:"}
    with StandInModel() as model, Network(NetworkOptions(speed=0.05)) as network:
        env = {**network.service_env(), **store_env, "OPENAI_BASE_URL": model.base_url, "ADMIN_TOKEN": ADMIN}
        if store_env:
            env["WEB_CONCURRENCY"] = "2"
        with start_service(env, overrides=overrides) as service:
            network.webhook_url = service.webhook_url
            run = run_rollback(network, service.url, ADMIN, model, healthy_calls=4, out=lambda line: None)
            assert model.answered >= 4  # the assistant answered the healthy callers
            assert run.tripped, "the guard never tripped"
            assert run.calls_before_trip <= 4 + 2 + 4 + 2  # healthy, in flight, the failing half of the window
            assert "brain failed on" in run.reason and "of the last 4 calls" in run.reason
            assert run.unfinished_calls == 0
            assert run.next_call_went_to_a_person, run.next_call_actions
            text = requests.get(f"{service.url}/metrics", timeout=5).text
            log = service.log()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("receptionist_ai_enabled", ())] == 0
    assert samples[("receptionist_ai_rollbacks_total", (("reason", "brain_failures"),))] == 1
    assert samples[("receptionist_escalations_total", (("reason", "ai_disabled"),))] >= 1
    assert "rollback guard: AI switched off, every new call goes to a person: brain failed on" in log
    assert "Traceback" not in log
