"""`make demo`: a key pair, the fake Telnyx, the service under gunicorn, every scenario, then a clean stop.

Then the scenarios in scenarios/streamed/, on a second service with the LLM brain streaming its replies from
a fake model (simulator/streamed_demo.py).

`make demo-redis` runs the same scenarios on the scaled-out service: a redis-server started for the demo, two
instances of two workers each sharing it, and every webhook delivered to a random instance.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from simulator.delivery import DeliveryOptions
from simulator.network import Network, NetworkOptions
from simulator.redis_server import RedisServer
from simulator.runner import ScenarioResult, run_scenarios, tally_line
from simulator.scenario import SERVICES, Scenario, all_scenario_paths, load_scenario
from simulator.service import Service, scenario_overrides, start_service
from simulator.streamed_demo import run_streamed_scenarios

REDIS_INSTANCES, REDIS_WORKERS = 2, 2
DESCRIPTIONS = {"after_hours": "the clinic is closed today", "recording": "recording.enabled: true"}


def run_demo(speed: float = 0.1, out: Callable[[str], None] = print, redis: bool = False) -> bool:
    """Run every scenario end to end; True when every call met its expectations."""
    scenarios = [load_scenario(path) for path in all_scenario_paths()]
    options = NetworkOptions(speed=speed, delivery=DeliveryOptions(spread="random"))
    with Network(options) as network:
        out(f"fake Telnyx API   {network.fake.base_url}")
        out(f"webhook key       {network.signer.public_key_b64} (TELNYX_PUBLIC_KEY)")
        with _services(network, redis, out) as services:
            network.webhook_urls = [service.webhook_url for service in services]
            out(f"call log          {services[0].call_log_path}\n")
            ordinary = [scenario for scenario in scenarios if scenario.service == "default"]
            results = run_scenarios(network, ordinary, services[0].call_log_path, out=out, tally=False)
        for name in SERVICES[1:]:
            results += _run_on_own_service(network, name, [s for s in scenarios if s.service == name], out)
        if not redis:
            results += run_streamed_scenarios(network, out)
    out(tally_line(results))
    return all(result.passed for result in results)


def _run_on_own_service(network: Network, name: str, scenarios: list[Scenario],
                        out: Callable[[str], None]) -> list[ScenarioResult]:
    """Scenarios that need the service set up differently (closed today, recording on): one gunicorn, in memory."""
    if not scenarios:
        return []
    with start_service(network.service_env(), overrides=scenario_overrides(name)) as service:
        network.webhook_urls = [service.webhook_url]
        out(f"\nservice           {service.url} (gunicorn, in memory; {DESCRIPTIONS[name]})\n")
        return run_scenarios(network, scenarios, service.call_log_path, out=out, tally=False)


@contextmanager
def _services(network: Network, redis: bool, out: Callable[[str], None]) -> Iterator[list[Service]]:
    """One gunicorn in memory; or a Redis and REDIS_INSTANCES gunicorns of REDIS_WORKERS workers sharing it."""
    with ExitStack() as stack:
        if not redis:
            service = stack.enter_context(start_service(network.service_env()))
            out(f"service           {service.url} (gunicorn, config.example.yml, offline brain)")
            yield [service]
            return
        server = stack.enter_context(RedisServer())
        shared = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="receptionist-demo-")))
        env = {**network.service_env(), "REDIS_URL": server.url, "WEB_CONCURRENCY": str(REDIS_WORKERS)}
        overrides = {"call_log.path": str(shared / "call_log.jsonl")}  # one call log, whichever instance wrote
        out(f"redis             {server.url} (a temporary redis-server, no persistence)")
        services = [stack.enter_context(start_service(env, overrides=overrides)) for _ in range(REDIS_INSTANCES)]
        for service in services:
            out(f"service           {service.url} (gunicorn, {REDIS_WORKERS} workers, on Redis)")
        yield services
