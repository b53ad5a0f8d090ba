"""RELIABILITY: slow and idle clients against the service as deployed (gunicorn.conf.py, deadline_worker.py).

Anyone who can reach the webhook URL can open connections and then send nothing, or a byte a second; no
signature is needed, because no request ever completes. With a thread per connection 32 of them silenced
every call. As deployed, each connection is a greenlet: the request line and headers must arrive within
gunicorn's `keepalive`, the body within BODY_DEADLINE_S (else 408), and real webhooks keep being answered
while hundreds of such connections are held. bench/slow_clients.py measures the full-size attack.
"""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from background import wait_until
from deadline_worker import BODY_DEADLINE_S, SPREAD
from figures import record
from simulator.attackers import Attack
from simulator.delivery import DeliveryOptions
from simulator.network import Network, NetworkOptions
from simulator.service import ROOT, start_service

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEEPALIVE_S = next(float(line.split("=")[1]) for line in (ROOT / "gunicorn.conf.py").read_text().splitlines()
                   if line.startswith("keepalive ="))
MAX_BODY = yaml.safe_load((ROOT / "config.example.yml").read_text())["webhook"]["max_body_bytes"]
ATTACK = {"slow_headers": 100, "slow_bodies": 100, "idle": 400}
CALLS = 12


@pytest.fixture(scope="module")
def deployed():
    """One network and one service as deployed for the whole module: every test here only adds connections."""
    options = NetworkOptions(speed=0.1, delivery=DeliveryOptions(max_attempts=1))  # a failed delivery is lost
    with Network(options) as network, start_service(network.service_env()) as service:
        network.webhook_url = service.webhook_url
        yield network, service


def port_of(service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def signed_request(network: Network, *, chunked: bool = False, expect_continue: bool = False) -> tuple[bytes, bytes]:
    """A signed webhook the service accepts (a speak that started on a call it does not hold): head and body."""
    event = json.loads((FIXTURES / "call_speak_started.json").read_text())
    event["data"]["id"] = str(uuid.uuid4())
    body = json.dumps(event).encode()
    lines = ["POST /webhooks/telnyx HTTP/1.1", "Host: receptionist"]
    lines += [f"{name}: {value}" for name, value in network.signer.headers(body).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        chunks = [f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:40], body[40:])]
        body = b"".join(chunks) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
    if expect_continue:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, received = time.monotonic(), b""
    sock.settimeout(timeout_s)
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def test_webhooks_are_answered_while_hundreds_of_slow_and_idle_connections_are_held(deployed):
    """100 connections trickling headers, 100 trickling bodies and 400 idle ones, reopened as soon as the server
    closes them: every call placed meanwhile is answered and greeted, each webhook acknowledged on its first try."""
    network, service = deployed
    before = len(network.delivery.log.attempts)
    with Attack("127.0.0.1", port_of(service), ATTACK) as attack:
        assert wait_until(lambda: attack.held() == ATTACK, 20), attack.held()
        calls = [network.carrier.place_call("+13125550111", "+13125550100") for _ in range(CALLS)]
        greeted = wait_until(lambda: all(_spoke(network, call.call_control_id) for call in calls), 15)
        assert wait_until(lambda: sum(attack.tally.closed_by_server.values()) > 0, KEEPALIVE_S + BODY_DEADLINE_S)
        network.delivery.wait_idle(timeout_s=10)
    attempts = network.delivery.log.attempts[before:]
    assert greeted, [call.call_control_id for call in calls if not _spoke(network, call.call_control_id)]
    assert attempts and all(a.ok for a in attempts), [a for a in attempts if not a.ok]
    slowest = max(a.latency_s for a in attempts)
    assert slowest < 2.0
    tally = attack.tally
    assert tally.refused == 0
    record("slow and idle clients held while calls go on", len(attempts), sum(a.ok for a in attempts),
           f"{ATTACK['slow_headers']} trickling headers, {ATTACK['slow_bodies']} trickling bodies, {ATTACK['idle']} "
           f"idle; {CALLS} calls answered and greeted; slowest ack {slowest * 1000:.0f} ms")


def _spoke(network: Network, call_control_id: str) -> bool:
    return any(r.action == "speak" and r.acted for r in network.fake.requests_for(call_control_id))


def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(deployed):
    network, service = deployed
    head, body = signed_request(network)
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=5) as sock:
        sock.sendall(head + body[:10])
        answer, waited = read_until_closed(sock, BODY_DEADLINE_S + 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert BODY_DEADLINE_S * SPREAD - 0.5 <= waited <= BODY_DEADLINE_S + 2, waited


@pytest.mark.parametrize("sent", [b"", b"POST /webhooks/telnyx HTTP/1.1\r\nHost: recep"], ids=["idle", "half a head"])
def test_a_connection_without_a_whole_request_head_is_closed_after_keepalive(deployed, sent):
    _, service = deployed
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=5) as sock:
        sock.sendall(sent)
        answer, waited = read_until_closed(sock, KEEPALIVE_S + 5)
    assert answer == b""
    assert KEEPALIVE_S * SPREAD - 0.5 <= waited <= KEEPALIVE_S + 2, waited


def test_idle_connections_opened_together_are_closed_over_seconds_not_all_at_once(deployed):
    """Each wait is drawn between SPREAD of `keepalive` and all of it: 2,000 connections opened in one moment
    and closed in one moment made the worker accept and close them in bursts that held webhooks 400 ms
    (BENCHMARKS.md, "Slow and idle clients")."""
    _, service = deployed
    opened = time.monotonic()
    waiting = [socket.create_connection(("127.0.0.1", port_of(service)), timeout=5) for _ in range(20)]
    waits = []
    try:
        while waiting and time.monotonic() - opened < KEEPALIVE_S + 5:
            readable, _, _ = select.select(waiting, [], [], 0.5)
            for sock in readable:
                assert read_until_closed(sock, 1)[0] == b""  # an idle connection is closed, never answered
                waits.append(time.monotonic() - opened)
                waiting.remove(sock)
                sock.close()
    finally:
        for sock in waiting:
            sock.close()
    assert len(waits) == 20, waits
    assert all(KEEPALIVE_S * SPREAD - 0.5 <= waited <= KEEPALIVE_S + 2 for waited in waits), waits
    assert max(waits) - min(waits) > 0.5, waits  # 20 draws over 2 s: all within 0.5 s has odds below 1e-10


@pytest.mark.parametrize("chunked, expect_continue", [(False, False), (True, False), (False, True)],
                         ids=["content-length", "chunked", "expect 100-continue"])
def test_whole_requests_are_served_on_a_kept_alive_connection(deployed, chunked, expect_continue):
    """The body is read before the app runs: chunked bodies, 100-continue and keep-alive work as before."""
    network, service = deployed
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=5) as sock:
        for _ in range(2):
            head, body = signed_request(network, chunked=chunked, expect_continue=expect_continue)
            sock.sendall(head)
            if expect_continue:
                assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            answer = _one_response(sock)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"status": "accepted"}


def _one_response(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, rest = received.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return head + b"\r\n\r\n" + rest


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_413_and_the_connection_closes(deployed, chunked):
    """Read no further than the limit: a declared length over it is refused unread, a chunked one at the limit."""
    _, service = deployed
    oversized = b"{" + b" " * (MAX_BODY + 10) + b"}"
    if chunked:
        head = b"POST /webhooks/telnyx HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked"
        body = f"{len(oversized):x}\r\n".encode() + oversized + b"\r\n"  # and no last chunk: never read anyway
    else:
        head = f"POST /webhooks/telnyx HTTP/1.1\r\nHost: r\r\nContent-Length: {len(oversized)}".encode()
        body = b""  # nothing of the body is sent: the answer must not wait for it
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=5) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        answer, waited = read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert waited < 2


def test_the_service_still_answers_health_checks_after_the_attacks(deployed):
    _, service = deployed
    assert requests.get(f"{service.url}/healthz", timeout=2).json()["status"] == "ok"
