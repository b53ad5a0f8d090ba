"""`make demo`: a key pair, the fake Telnyx, the service under gunicorn, every scenario, the rollback, a clean stop.

Then the scenarios in scenarios/streamed/, on a second service with the LLM brain streaming its replies from
a fake model (simulator/streamed_demo.py).

`make demo-redis` runs the same scenarios on the scaled-out service: a redis-server started for the demo, two
instances of two workers each sharing it, and every webhook delivered to a random instance.

`make demo-serve` runs the scenarios, then leaves the service and the simulated network running, with the
operator page on: sign in at /admin, watch /metrics, and place more calls from the terminal.

The rollback part (`make demo` only) starts a second service whose brain is a stand-in language model
(simulator/model.py), breaks the model in the middle of traffic and shows the rollback guard switch the AI
off (simulator/rollback.py).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from simulator.delivery import DeliveryOptions
from simulator.model import StandInModel
from simulator.network import Network, NetworkOptions
from simulator.redis_server import RedisServer
from simulator.rollback import OVERRIDES, run_rollback
from simulator.runner import ScenarioResult, run_scenario, run_scenarios, tally_line
from simulator.scenario import SERVICES, Scenario, all_scenario_paths, load_scenario
from simulator.service import Service, scenario_overrides, start_service
from simulator.streamed_demo import run_streamed_scenarios

REDIS_INSTANCES, REDIS_WORKERS = 2, 2
DESCRIPTIONS = {"after_hours": "the clinic is closed today", "recording": "recording.enabled: true"}
SERVE_DEFAULT_SCENARIO = "question_answered"


def run_demo(speed: float = 0.1, out: Callable[[str], None] = print, redis: bool = False, serve: bool = False,
             port: int | None = None, commands: Iterable[str] | None = None) -> bool:
    """Run every scenario end to end (then the rollback, or serve); True when every call met its expectations."""
    scenarios = [load_scenario(path) for path in all_scenario_paths()]
    options = NetworkOptions(speed=speed, delivery=DeliveryOptions(spread="random"))
    token = os.environ.get("ADMIN_TOKEN") or secrets.token_urlsafe(18)
    with Network(options) as network:
        out(f"fake Telnyx API   {network.fake.base_url}")
        out(f"webhook key       {network.signer.public_key_b64} (TELNYX_PUBLIC_KEY)")
        with _services(network, redis, out, {"ADMIN_TOKEN": token}, port) as services:
            network.webhook_urls = [service.webhook_url for service in services]
            out(f"call log          {services[0].call_log_path}\n")
            ordinary = [scenario for scenario in scenarios if scenario.service == "default"]
            results = run_scenarios(network, ordinary, services[0].call_log_path, out=out, tally=False)
            if serve:
                serve_calls(network, services[0], token, ordinary, out, sys.stdin if commands is None else commands)
        if not serve:
            for name in SERVICES[1:]:
                results += _run_on_own_service(network, name, [s for s in scenarios if s.service == name], out)
            if not redis:
                results += run_streamed_scenarios(network, out)
    out(tally_line(results))
    passed = all(result.passed for result in results)
    if not (serve or redis):
        passed = _rollback(speed, token, out) and passed
    return passed


def serve_calls(network: Network, service: Service, token: str, scenarios: list[Scenario],
           out: Callable[[str], None], commands: Iterable[str]) -> None:
    """Leave everything running; each line read places one more call (a scenario by name, Enter: the default)."""
    by_name = {scenario.name: scenario for scenario in scenarios}
    out(f"\noperator page     {service.url}/admin   sign in with the admin token below")
    out(f"admin token       {token}")
    out(f"metrics           curl {service.url}/metrics")
    out(f"Press Enter to place a call ({SERVE_DEFAULT_SCENARIO}), or type a scenario name "
        f"({', '.join(sorted(by_name))}); Ctrl-D or Ctrl-C to stop.")
    for line in commands:
        scenario = by_name.get(line.strip() or SERVE_DEFAULT_SCENARIO)
        if scenario is None:
            out(f"no scenario {line.strip()!r}")
            continue
        out(run_scenario(network, scenario, service.call_log_path).transcript + "\n")


def _rollback(speed: float, token: str, out: Callable[[str], None]) -> bool:
    """The model breaks mid-traffic; True when the guard switched the AI off and the next caller got a person."""
    out("\n--- rollback: the model starts failing in the middle of traffic ---")
    with StandInModel() as model, Network(NetworkOptions(speed=speed)) as network:
        env = {**network.service_env(), "OPENAI_BASE_URL": model.base_url, "ADMIN_TOKEN": token}
        with start_service(env, overrides=OVERRIDES) as service:
            out(f"service           {service.url} (LLM brain on a stand-in model; guard window "
                f"{OVERRIDES['rollback.window_calls']} calls, brain failures over "
                f"{OVERRIDES['rollback.max_brain_failure_share']:.0%} switch the AI off)")
            network.webhook_url = service.webhook_url
            run = run_rollback(network, service.url, token, model, out=out)
    if run.next_call_transcript:
        out(run.next_call_transcript)
    ok = run.tripped and run.next_call_went_to_a_person and not run.unfinished_calls
    out("rollback: " + ("the guard tripped and the next caller went straight to a person" if ok else "FAILED"))
    return ok


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
def _services(network: Network, redis: bool, out: Callable[[str], None], extra_env: Mapping[str, str],
              port: int | None = None) -> Iterator[list[Service]]:
    """One gunicorn in memory; or a Redis and REDIS_INSTANCES gunicorns of REDIS_WORKERS workers sharing it."""
    with ExitStack() as stack:
        if not redis:
            service = stack.enter_context(start_service({**network.service_env(), **extra_env}, port=port))
            out(f"service           {service.url} (gunicorn, config.example.yml, offline brain)")
            yield [service]
            return
        server = stack.enter_context(RedisServer())
        shared = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="receptionist-demo-")))
        env = {**network.service_env(), **extra_env, "REDIS_URL": server.url, "WEB_CONCURRENCY": str(REDIS_WORKERS)}
        overrides = {"call_log.path": str(shared / "call_log.jsonl")}  # one call log, whichever instance wrote
        out(f"redis             {server.url} (a temporary redis-server, no persistence)")
        services = [stack.enter_context(start_service(env, overrides=overrides, port=port if i == 0 else None))
                    for i in range(REDIS_INSTANCES)]
        for service in services:
            out(f"service           {service.url} (gunicorn, {REDIS_WORKERS} workers, on Redis)")
        yield services
