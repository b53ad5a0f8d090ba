"""The bench's clocks at the wire: when a request's bytes reached a fake (simulator/arrival.py) and when a
webhook's had left the simulator (simulator/departure.py), not when a busy thread got round to them."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from simulator import arrival, departure
from simulator.delivery import DeliveryOptions, WebhookDelivery
from simulator.events import WebhookEvent
from simulator.fake_telnyx import FakeTelnyx
from simulator.signing import WebhookSigner

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the kernel's receive stamps are Linux's")
LATE_S = 0.3  # how long a thread is late to its request in these tests


class StampedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, late_s: float):
        self.late_s, self.seen = late_s, []
        super().__init__(("127.0.0.1", 0), Handler)

    def server_bind(self) -> None:
        super().server_bind()
        arrival.enable(self.socket)


class Handler(arrival.Stamped, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StampedServer

    def handle_one_request(self) -> None:
        time.sleep(self.server.late_s)  # a thread slow to get to the bytes waiting for it
        super().handle_one_request()

    def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.arrived_at(), time.monotonic()))
        answer_empty(self)

    def log_message(self, *args: object) -> None:
        pass


def answer_empty(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@pytest.fixture
def late_server():
    server = StampedServer(LATE_S)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@linux_only
def test_a_request_is_stamped_when_its_bytes_came_not_when_the_thread_read_them(late_server):
    session = requests.Session()
    url = f"http://127.0.0.1:{late_server.server_address[1]}/"
    sent = []
    for _ in range(2):  # the second over the same kept-alive connection gets a stamp of its own
        sent.append(time.monotonic())
        assert session.post(url, data=b'{"a": 1}', timeout=5).status_code == 200
        time.sleep(0.05)  # the handler thread is still asleep when the second request comes
    for posted, (arrived, taken) in zip(sent, late_server.seen, strict=True):
        assert posted <= arrived < posted + 0.05  # the kernel's stamp, converted to time.monotonic()
        assert taken - arrived >= LATE_S - 0.1  # read after the thread's sleep: the stamp is not that moment


@linux_only
def test_the_stamp_is_the_last_bytes_of_the_request_not_its_first(late_server):
    """A head and a body sent apart: the request has reached the machine when its body has."""
    late_server.late_s = 0.0
    with socket.create_connection(late_server.server_address[:2], timeout=5) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        time.sleep(0.25)
        body_sent = time.monotonic()
        client.sendall(b"{}")
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
    arrived, _ = late_server.seen[0]
    assert body_sent <= arrived < body_sent + 0.05


def test_without_a_kernel_stamp_the_reader_falls_back_to_its_own_clock():
    listener = socket.create_server(("127.0.0.1", 0))  # not enabled: no stamp comes with the bytes
    with listener, socket.create_connection(listener.getsockname()) as client:
        connection, _ = listener.accept()
        with connection:
            client.sendall(b"hello")
            time.sleep(0.2)
            before = time.monotonic()
            reader = arrival.StampedReader(connection)
            buffer = bytearray(16)
            assert reader.readinto(buffer) == 5 and bytes(buffer[:5]) == b"hello"
            assert reader.last_at >= before  # read now, so "now"


def test_a_stamp_from_a_wall_clock_ahead_is_never_in_the_future():
    assert arrival.to_monotonic(time.time() + 60) <= time.monotonic()
    assert arrival.to_monotonic(time.time() - 1) == pytest.approx(time.monotonic() - 1, abs=0.01)


@linux_only
def test_the_fake_telnyx_records_arrival_and_when_it_took_the_request():
    with FakeTelnyx() as fake:
        body = {"payload": "hello", "voice": "female", "language": "en-US", "command_id": "c1"}
        before = time.monotonic()
        response = requests.post(f"{fake.base_url}/calls/v3:x/actions/speak", json=body, timeout=5,
                                 headers={"Authorization": "Bearer test"})
        after = time.monotonic()
    assert response.status_code in (200, 404, 422)  # whatever the fake answers, the request is on record
    (record,) = fake.records
    assert before <= record.arrived_at <= record.at <= after


class SlowAnswer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(LATE_S)  # the service takes its time to answer: the webhook had left long before
        answer_empty(self)

    log_message = Handler.log_message


@pytest.fixture
def slow_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowAnswer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    server.shutdown()
    server.server_close()


def test_a_session_noting_sends_knows_when_the_request_left(slow_service):
    session = departure.note_sends(requests.Session())
    departure.forget()
    assert departure.last_sent_at() is None
    before = time.monotonic()
    assert session.post(slow_service, data=b"x" * 10_000, timeout=5).status_code == 200
    after = time.monotonic()
    assert before < departure.last_sent_at() <= after - LATE_S + 0.02  # sent, then the answer took LATE_S


def test_the_note_is_per_thread(slow_service):
    departure.forget()
    session = departure.note_sends(requests.Session())
    worker = threading.Thread(target=lambda: session.post(slow_service, data=b"{}", timeout=5))
    worker.start()
    worker.join()
    assert departure.last_sent_at() is None  # another thread's request


def one_attempt(url: str, options: DeliveryOptions):
    """Deliver one webhook to `url` and return the delivery's only attempt."""
    delivery = WebhookDelivery(url, WebhookSigner.generate(), options)
    try:
        delivery.deliver(WebhookEvent("call.initiated", {"call_control_id": "v3:wire"}))
        assert delivery.wait_idle(timeout_s=5)
    finally:
        delivery.close()
    (attempt,) = delivery.log.attempts
    return attempt


def test_each_delivery_attempt_records_when_its_webhook_left(slow_service):
    attempt = one_attempt(slow_service, DeliveryOptions(workers=2))
    assert attempt.ok and attempt.sent_at is not None
    assert attempt.started_at < attempt.left_at == attempt.sent_at
    assert attempt.sent_at <= attempt.started_at + attempt.latency_s - LATE_S + 0.02


def test_an_attempt_that_never_went_out_left_when_it_started():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    attempt = one_attempt(f"http://127.0.0.1:{port}/webhooks", DeliveryOptions(workers=1, max_attempts=1))
    assert attempt.status is None and attempt.sent_at is None and attempt.left_at == attempt.started_at


def test_the_fake_telnyx_reads_bodies_whole_through_the_stamped_reader():
    """Bodies larger than one read come through intact (the reader is a raw stream under a buffer)."""
    with FakeTelnyx() as fake:
        text = "word " * 600
        body = {"payload": text, "voice": "female", "language": "en-US", "command_id": "c2"}
        requests.post(f"{fake.base_url}/calls/v3:y/actions/speak", data=json.dumps(body).encode(), timeout=5,
                      headers={"Authorization": "Bearer test", "Content-Type": "application/json"})
    (record,) = fake.records
    assert record.body["payload"] == text
