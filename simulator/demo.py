"""`make demo`: a key pair, the fake Telnyx, the service under gunicorn, every scenario, then a clean stop."""

from __future__ import annotations

from collections.abc import Callable

from simulator.network import Network, NetworkOptions
from simulator.runner import run_scenarios
from simulator.scenario import all_scenario_paths, load_scenario
from simulator.service import start_service


def run_demo(speed: float = 0.1, out: Callable[[str], None] = print) -> bool:
    """Run every scenario end to end; True when every call met its expectations."""
    scenarios = [load_scenario(path) for path in all_scenario_paths()]
    with Network(NetworkOptions(speed=speed)) as network:
        out(f"fake Telnyx API   {network.fake.base_url}")
        out(f"webhook key       {network.signer.public_key_b64} (TELNYX_PUBLIC_KEY)")
        with start_service(network.service_env()) as service:
            network.webhook_url = service.webhook_url
            out(f"service           {service.url} (gunicorn, config.example.yml, offline brain)")
            out(f"call log          {service.call_log_path}\n")
            results = run_scenarios(network, scenarios, service.call_log_path, out=out)
    return all(result.passed for result in results)
