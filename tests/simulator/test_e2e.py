"""END-TO-END: every scenario against the real service under gunicorn, through the simulated network.

These start gunicorn exactly as deployed (see simulator/service.py) and take about half a minute.
They are skipped only while app.py does not exist; a service that fails to boot fails them.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from redis_available import require_redis_or_skip
from simulator.delivery import DeliveryOptions
from simulator.demo import run_demo
from simulator.faults import FaultPlan
from simulator.load import run_load
from simulator.network import Network, NetworkOptions
from simulator.runner import run_scenario
from simulator.scenario import all_scenario_paths, load_scenario
from simulator.service import scenario_overrides, start_service

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {path.stem: load_scenario(path) for path in all_scenario_paths()}

pytestmark = pytest.mark.skipif(not (ROOT / "app.py").exists(), reason="the service (app.py) does not exist yet")


@pytest.fixture(scope="module")
def live():
    """One network and one gunicorn service for the module's scenario runs."""
    with Network(NetworkOptions(speed=0.05)) as network, start_service(network.service_env()) as service:
        network.webhook_url = service.webhook_url
        yield network, service


def test_the_shipped_scenarios_cover_the_brief():
    assert set(SCENARIOS) >= {"question_answered", "asks_for_person", "mumbling_caller", "presses_zero",
                              "transfer_unanswered", "hangs_up_mid_sentence", "silent_caller",
                              "after_hours_message", "transfer_to_voicemail", "recorded_with_consent"}


@pytest.fixture
def own_service():
    """A network and a gunicorn service set up as a scenario's `service` asks (closed today, recording on)."""
    with ExitStack() as stack:
        def start(name: str):
            network = stack.enter_context(Network(NetworkOptions(speed=0.05)))
            service = stack.enter_context(start_service(network.service_env(), overrides=scenario_overrides(name)))
            network.webhook_url = service.webhook_url
            return network, service

        yield start


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_meets_its_expectations(request, name):
    kind = SCENARIOS[name].service
    network, service = request.getfixturevalue("live") if kind == "default" else request.getfixturevalue(
        "own_service")(kind)
    result = run_scenario(network, SCENARIOS[name], service.call_log_path)
    assert result.passed, result.transcript


def test_chaos_every_call_still_ends_as_expected_without_double_effects():
    """Duplicated, reordered, jittered webhooks and failing API calls: same outcomes, no double effects."""
    options = NetworkOptions(
        speed=0.05,
        delivery=DeliveryOptions(duplicate_rate=0.3, reorder_rate=0.3, jitter_s=0.03, seed=11),
        faults=FaultPlan(error_rate=0.2, ambiguous_share=0.3, retry_after_s=3600),
        seed=11,
    )
    with Network(options) as network, start_service(network.service_env()) as service:
        network.webhook_url = service.webhook_url
        results = [run_scenario(network, scenario, service.call_log_path) for scenario in SCENARIOS.values()
                   if scenario.service == "default"]
    failures = [r.transcript for r in results if not r.passed]
    assert not failures, "\n\n".join(failures)
    assert sum(r.call.duplicate_effects for r in results) == 0
    assert any(a.duplicate for a in network.delivery.log.attempts), "the chaos switches injected no duplicate"
    assert any(r.fault for r in network.fake.records), "the chaos switches injected no API fault"


def test_small_load_run_reports_its_figures():
    report = run_load(calls=6, concurrency=3, turns=1, options=NetworkOptions(speed=0.05))
    assert (report.calls, report.completed, report.lost, report.errors) == (6, 6, 0, 0)
    assert report.turn_latency_ms.p50 is not None and report.webhook_ack_ms.p99 is not None
    assert report.duplicate_effects == 0
    assert report.commands_per_call >= 5  # answer, speak, transcription_start, replies, hangup


def test_the_scaled_out_demo_meets_every_scenario_over_two_instances_on_redis():
    """`make demo-redis`: its own redis-server, two instances of two workers, webhooks spread at random."""
    require_redis_or_skip()
    lines: list[str] = []
    assert run_demo(speed=0.05, out=lines.append, redis=True), "\n".join(lines[-40:])
    services = [line for line in lines if line.startswith("service ") and "on Redis" in line]
    assert len(services) == 2 and any(line.startswith("redis ") for line in lines)
    assert lines[-1] == f"{len(all_scenario_paths())}/{len(all_scenario_paths())} scenarios met their expectations"
