"""`python -m simulator run|load|serve-fake|demo`: the commands a newcomer, a test run and a benchmark use."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from simulator.delivery import SPREADS, DeliveryOptions
from simulator.faults import FaultPlan
from simulator.load import run_load
from simulator.network import Network, NetworkOptions, webhook_urls
from simulator.redis_server import RedisServerError
from simulator.runner import run_scenarios
from simulator.scenario import ScenarioError, all_scenario_paths, load_scenario
from simulator.service import ServiceError, start_service
from simulator.signing import WebhookSigner


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ScenarioError, ServiceError, RedisServerError) as exc:
        print(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    run = commands.add_parser("run", help="run scenarios and print each call as a transcript")
    run.add_argument("scenarios", nargs="*", help="scenario files (default: every scenarios/*.yml)")
    _network_arguments(run, default_speed=0.1)
    run.set_defaults(handler=cmd_run)
    load = commands.add_parser("load", help="place many calls and print latency figures")
    load.add_argument("--calls", type=int, default=20)
    load.add_argument("--concurrency", type=int, default=5)
    load.add_argument("--turns", type=int, default=2, help="questions per call before goodbye")
    load.add_argument("--max-duration", type=float, default=300.0, help="stop placing calls after this many seconds")
    load.add_argument("--json", action="store_true", help="print the report as JSON")
    _network_arguments(load, default_speed=0.05)
    load.set_defaults(handler=cmd_load)
    serve = commands.add_parser("serve-fake", help="run only the fake Telnyx API and print the service's env")
    serve.add_argument("--key-file", help="keep the webhook signing key here (created if missing)")
    serve.add_argument("--api-port", type=int, default=8790)
    serve.add_argument("--env-only", action="store_true", help="print the env and exit")
    serve.set_defaults(handler=cmd_serve_fake)
    demo = commands.add_parser("demo", help="start everything, run every scenario, stop everything")
    demo.add_argument("--speed", type=float, default=0.1, help="speech duration factor (1.0 = real time)")
    demo.add_argument("--redis", action="store_true",
                      help="scaled out: a temporary redis-server, two instances of two workers, webhooks spread "
                           "at random (needs redis-server installed)")
    demo.add_argument("--serve", action="store_true",
                      help="after the scenarios, leave the service running with the operator page on (/admin) and "
                           "place a call each time Enter is pressed")
    demo.add_argument("--port", type=int, help="where the service listens (default: a free port)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _network_arguments(parser: argparse.ArgumentParser, default_speed: float) -> None:
    parser.add_argument("--service", type=service_urls, metavar="URL[,URL...]",
                        help="running service instance(s), comma-separated; webhooks are spread over them "
                             "(default: start one under gunicorn)")
    parser.add_argument("--spread", choices=SPREADS, default="random",
                        help="how each webhook attempt picks among several --service URLs: random, like a load "
                             "balancer, or round_robin (default: random)")
    parser.add_argument("--call-log", help="the service's call log (JSON lines), for message_taken checks")
    parser.add_argument("--key-file", help="webhook signing key file, shared with serve-fake")
    parser.add_argument("--api-port", type=int, default=0, help="fake API port (use serve-fake's with --service)")
    parser.add_argument("--speed", type=float, default=default_speed, help="speech duration factor (1.0 = real)")
    parser.add_argument("--duplicates", type=float, default=0.0, help="fraction of webhooks delivered twice")
    parser.add_argument("--reorder", type=float, default=0.0, help="fraction of webhooks held back / reordered")
    parser.add_argument("--api-faults", type=float, default=0.0, help="fraction of API requests failing 5xx/429")
    parser.add_argument("--seed", type=int, help="random seed for the chaos switches and --spread random")


def service_urls(text: str) -> list[str]:
    """`--service`'s comma-separated base URLs, each an http(s) URL with a host."""
    urls = [url.strip() for url in text.split(",") if url.strip()]
    if not urls or not all(map(_is_http_url, urls)):
        raise argparse.ArgumentTypeError(f"expected http(s) URLs separated by commas, got {text!r}")
    return urls


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def network_options(args: argparse.Namespace) -> NetworkOptions:
    delivery = DeliveryOptions(duplicate_rate=args.duplicates, reorder_rate=args.reorder,
                               jitter_s=0.03 if args.reorder else 0.0, seed=args.seed, spread=args.spread)
    faults = FaultPlan(error_rate=args.api_faults, ambiguous_share=0.25)
    return NetworkOptions(speed=args.speed, delivery=delivery, faults=faults, api_port=args.api_port, seed=args.seed)


def _signer(key_file: str | None) -> WebhookSigner:
    return WebhookSigner.load_or_create(key_file) if key_file else WebhookSigner.generate()


def cmd_run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.scenarios] or all_scenario_paths()
    scenarios = [load_scenario(p) for p in paths]
    with ExitStack() as stack:
        network = stack.enter_context(Network(network_options(args), _signer(args.key_file)))
        call_log = args.call_log
        if args.service:
            network.webhook_urls = webhook_urls(args.service)
        else:
            service = stack.enter_context(start_service(network.service_env()))
            network.webhook_url, call_log = service.webhook_url, call_log or service.call_log_path
        results = run_scenarios(network, scenarios, call_log)
    return 0 if all(r.passed for r in results) else 1


def cmd_load(args: argparse.Namespace) -> int:
    options = network_options(args)
    with Network(options, _signer(args.key_file)) as network:
        report = run_load(args.calls, args.concurrency, args.turns, service_url=args.service, options=options,
                          network=network, max_duration_s=args.max_duration)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.lost == 0 else 1


def cmd_serve_fake(args: argparse.Namespace) -> int:
    network = Network(NetworkOptions(api_port=args.api_port), _signer(args.key_file))
    for name, value in network.service_env().items():
        print(f"export {name}={value}")
    if args.env_only:
        return 0
    print(f"# fake Telnyx API listening on {network.fake.base_url} (Ctrl-C to stop)")
    with network:
        while True:
            time.sleep(3600)


def cmd_demo(args: argparse.Namespace) -> int:
    from simulator.demo import run_demo

    return 0 if run_demo(speed=args.speed, redis=args.redis, serve=args.serve, port=args.port) else 1
