"""Webhooks spread over several service instances, as behind a load balancer: the spread, retries and a dead one."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simulator.cli import build_parser, network_options
from simulator.delivery import DeliveryOptions, Targets, WebhookDelivery
from simulator.events import WebhookEvent
from simulator.network import webhook_urls
from simulator.signing import WebhookSigner


class Server(ThreadingHTTPServer):
    """http.server with a listen queue deep enough for 32 delivery workers at once (the default is 5)."""

    request_queue_size = 128
    daemon_threads = True


class Instance:
    """One service instance on 127.0.0.1 port 0 that answers every webhook with `status` and keeps the bodies."""

    def __init__(self, status: int = 200):
        self.status = status
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.server = Server(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/telnyx"

    def _handler(self):
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with instance.lock:
                    instance.bodies.append(body)
                self.send_response(instance.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        return Handler

    def event_ids(self) -> list[str]:
        return [body["data"]["id"] for body in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DeadInstance:
    """A port that is bound but never listens, so every connection is refused (and no one else can take it)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/webhooks/telnyx"
        self.bodies: list[dict] = []

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def instances():
    """`instances(200, 200, "dead", 503)`: one running instance per argument, closed after the test."""
    started: list = []

    def start(*kinds: int | str) -> list:
        started.extend(DeadInstance() if kind == "dead" else Instance(kind) for kind in kinds)
        return started[-len(kinds):]

    yield start
    for instance in started:
        instance.close()


@pytest.fixture
def deliveries():
    """`deliveries(urls, **options)`: a WebhookDelivery with fast retries, closed after the test."""
    made: list[WebhookDelivery] = []
    signer = WebhookSigner.generate()

    def make(urls, **overrides) -> WebhookDelivery:
        options = DeliveryOptions(**{"backoff_s": (0.01, 0.02), "timeout_s": 5.0, "seed": 3, **overrides})
        made.append(WebhookDelivery(urls, signer, options))
        return made[-1]

    yield make
    for delivery in made:
        delivery.close()


def events(count: int) -> list[WebhookEvent]:
    return [WebhookEvent("call.initiated", {"call_control_id": f"v3:call-{i}"}) for i in range(count)]


def deliver_one_by_one(delivery: WebhookDelivery, batch: list[WebhookEvent]) -> None:
    """Each event waits for the previous one, so the order of picks is the order of events."""
    for event in batch:
        delivery.deliver(event)
        assert delivery.wait_idle(5)


def deliver_all_at_once(delivery: WebhookDelivery, batch: list[WebhookEvent]) -> None:
    for event in batch:
        delivery.deliver(event)
    assert delivery.wait_idle(10)


def urls_of(running: list) -> list[str]:
    return [instance.url for instance in running]


def test_round_robin_cycles_through_the_targets_in_order(instances, deliveries):
    running = instances(200, 200, 200)
    delivery = deliveries(urls_of(running), spread="round_robin")
    batch = events(7)
    deliver_one_by_one(delivery, batch)
    assert [a.target for a in delivery.log.attempts] == (urls_of(running) * 3)[:7]
    for i, instance in enumerate(running):
        assert instance.event_ids() == [e.event_id for e in batch[i::3]]
        assert {body["meta"]["delivered_to"] for body in instance.bodies} == {instance.url}


def test_round_robin_shares_concurrent_deliveries_exactly(instances, deliveries):
    running = instances(200, 200)
    delivery = deliveries(urls_of(running), spread="round_robin")
    deliver_all_at_once(delivery, events(40))
    assert [len(instance.bodies) for instance in running] == [20, 20]


def test_random_spreads_over_every_target(instances, deliveries):
    running = instances(200, 200, 200)
    delivery = deliveries(urls_of(running), spread="random", seed=11)
    batch = events(60)
    deliver_one_by_one(delivery, batch)
    shares = Counter(a.target for a in delivery.log.attempts)
    assert set(shares) == set(urls_of(running))
    assert min(shares.values()) >= 10, shares
    assert sorted(e for instance in running for e in instance.event_ids()) == sorted(e.event_id for e in batch)
    assert [a.target for a in delivery.log.attempts] != (urls_of(running) * 20), "random picked in strict rotation"


def test_random_picks_are_reproducible_with_the_same_seed(instances, deliveries):
    urls = urls_of(instances(200, 200, 200))

    def picks(seed: int) -> list[int]:
        delivery = deliveries(urls, spread="random", seed=seed)
        deliver_one_by_one(delivery, events(30))
        return [urls.index(a.target) for a in delivery.log.attempts]

    first = picks(5)
    assert picks(5) == first
    assert picks(6) != first


@pytest.mark.parametrize("spread", ["random", "round_robin"])
@pytest.mark.parametrize("failing", ["dead", 503])
def test_a_failing_target_loses_no_webhook_while_another_is_alive(instances, deliveries, spread, failing):
    bad, good = instances(failing, 200)
    delivery = deliveries([bad.url, good.url], spread=spread, seed=2)
    batch = events(30)
    deliver_all_at_once(delivery, batch)
    attempts = delivery.log.attempts
    assert sorted(good.event_ids()) == sorted(e.event_id for e in batch)
    assert {a.event_id for a in attempts if a.ok} == {e.event_id for e in batch}
    failed = [a for a in attempts if not a.ok]
    assert failed, "no attempt went to the failing target"
    assert {a.target for a in failed} == {bad.url}
    assert {a.status for a in failed} == {None if failing == "dead" else 503}
    assert {a.target for a in attempts if a.ok} == {good.url}
    assert all(a.attempt == 2 for a in attempts if a.ok and a.event_id in {f.event_id for f in failed})
    assert len(bad.bodies) == (0 if failing == "dead" else len(failed))


def test_when_every_target_fails_delivery_gives_up_after_max_attempts(instances, deliveries):
    first, second = instances(503, "dead")
    delivery = deliveries([first.url, second.url], spread="random", max_attempts=3)
    deliver_one_by_one(delivery, events(1))
    attempts = delivery.log.attempts
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert {a.target for a in attempts[:2]} == {first.url, second.url}, "the retry went back to the failed target"
    assert not any(a.ok for a in attempts)


@pytest.mark.parametrize("as_list", [False, True])
def test_a_single_url_gets_every_attempt(instances, deliveries, as_list):
    (instance,) = instances(503)
    delivery = deliveries([instance.url] if as_list else instance.url, spread="random", max_attempts=3)
    batch = events(2)
    deliver_one_by_one(delivery, batch)
    assert delivery.url == instance.url
    assert [(a.target, a.attempt) for a in delivery.log.attempts] == [(instance.url, n) for n in (1, 2, 3)] * 2
    assert [body["meta"]["attempt"] for body in instance.bodies] == [1, 2, 3] * 2
    assert {body["meta"]["delivered_to"] for body in instance.bodies} == {instance.url}


def test_setting_url_replaces_the_targets(deliveries):
    delivery = deliveries("")
    delivery.url = ["http://127.0.0.1:1/a", "http://127.0.0.1:2/a"]
    assert delivery.targets.urls == ("http://127.0.0.1:1/a", "http://127.0.0.1:2/a")
    assert delivery.url == "http://127.0.0.1:1/a"


@pytest.mark.parametrize(("urls", "spread", "problem"), [
    ([], "random", "no webhook target URL"),
    (["http://127.0.0.1:1/"], "sticky", "unknown spread 'sticky'"),
])
def test_targets_refuse_what_they_cannot_spread_over(urls, spread, problem):
    with pytest.raises(ValueError, match=problem):
        Targets(urls, spread)


def test_service_option_takes_several_urls_and_a_spread():
    args = build_parser().parse_args(
        ["load", "--service", "http://127.0.0.1:8001/, http://127.0.0.1:8002", "--spread", "round_robin"])
    assert args.service == ["http://127.0.0.1:8001/", "http://127.0.0.1:8002"]
    assert network_options(args).delivery.spread == "round_robin"
    assert webhook_urls(args.service) == ("http://127.0.0.1:8001/webhooks/telnyx",
                                          "http://127.0.0.1:8002/webhooks/telnyx")


def test_service_option_defaults_to_random_spread_and_keeps_one_url():
    args = build_parser().parse_args(["run", "--service", "http://127.0.0.1:8001"])
    assert args.service == ["http://127.0.0.1:8001"]
    assert network_options(args).delivery.spread == "random"


@pytest.mark.parametrize("bad", [",", "127.0.0.1:8001", "http://127.0.0.1:8001,ftp://x"])
def test_service_option_rejects_what_is_not_a_list_of_http_urls(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--service", bad])
    assert "expected http(s) URLs separated by commas" in capsys.readouterr().err
