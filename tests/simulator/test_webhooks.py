"""Webhooks as the simulator sends them: signed like Telnyx, shaped like the spec, retried like Telnyx."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from simulator.carrier import Carrier, TransferPlan
from simulator.delivery import DeliveryOptions, WebhookDelivery
from simulator.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSigner
from tests.spec import validate_webhook
from webhook_auth import WebhookVerifier, load_public_key


class Receiver:
    """A tiny webhook endpoint on port 0 that fails (or stalls) the first `failures` requests."""

    def __init__(self, failures: int = 0, stall_s: float = 0.0):
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []
        self.failures, self.stall_s = failures, stall_s
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/telnyx"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                    fail = len(receiver.bodies) <= receiver.failures
                if fail and receiver.stall_s:
                    time.sleep(receiver.stall_s)
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        return Handler

    def attempts(self) -> list[int]:
        return [json.loads(body)["meta"]["attempt"] for body in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def signer():
    return WebhookSigner.generate()


def fast_options(**overrides) -> DeliveryOptions:
    return DeliveryOptions(**{"backoff_s": (0.01, 0.02), "timeout_s": 0.5, "seed": 3, **overrides})


def test_signature_verifies_with_the_public_key(signer):
    body = b'{"data":{}}'
    headers = signer.headers(body)
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer.public_key_b64))
    public_key.verify(base64.b64decode(headers[SIGNATURE_HEADER]), headers[TIMESTAMP_HEADER].encode() + b"|" + body)
    WebhookVerifier(load_public_key(signer.public_key_b64)).verify(body, headers)  # the service accepts it too


def test_key_file_round_trips(tmp_path):
    path = tmp_path / "sim.key"
    first = WebhookSigner.load_or_create(path)
    assert WebhookSigner.load_or_create(path).public_key_b64 == first.public_key_b64


def test_every_event_of_a_full_call_validates_against_the_spec():
    events: list = []
    carrier = Carrier(events.append, speed=0.01)
    try:
        call = carrier.place_call("+13125550111", "+13125550100", TransferPlan(answer=False, ring_s=0.5))
        for action, body in [("answer", {}), ("transcription_start", {}), ("speak", {"payload": "hi", "voice": "v"})]:
            carrier.handle_command(call.call_control_id, action, body)
        carrier.say(call, "hello", 0.9)
        carrier.press(call, "0")
        carrier.handle_command(call.call_control_id, "transfer", {"to": "+15555550100"})
        assert carrier.wait(lambda: call.transfer_failed_at is not None, 5)
        carrier.hang_up(call)
    finally:
        carrier.scheduler.stop()
    seen = {e.event_type for e in events}
    assert seen >= {"call.initiated", "call.answered", "call.speak.started", "call.speak.ended",
                    "call.transcription", "call.dtmf.received", "call.hangup"}
    for event in events:
        envelope = json.loads(json.dumps(event.envelope(1, "http://127.0.0.1/webhooks/telnyx")))
        validate_webhook(envelope)
        assert envelope["data"]["occurred_at"].endswith("Z")


def test_bridged_events_validate_against_the_spec():
    events: list = []
    carrier = Carrier(events.append, speed=0.01)
    try:
        call = carrier.place_call("+13125550111", "+13125550100", TransferPlan(answer=True, ring_s=0.5, talk_s=100))
        carrier.handle_command(call.call_control_id, "answer", {})
        carrier.handle_command(call.call_control_id, "transfer", {"to": "+15555550100"})
        assert carrier.wait(lambda: call.bridged_to is not None, 5)
    finally:
        carrier.scheduler.stop()
    bridged = [e for e in events if e.event_type == "call.bridged"]
    assert len(bridged) == 2
    for event in bridged:
        validate_webhook(event.envelope(1, "http://127.0.0.1/"))


def deliver_one(receiver: Receiver, signer: WebhookSigner, options: DeliveryOptions) -> WebhookDelivery:
    events: list = []
    carrier = Carrier(events.append)
    carrier.place_call("+13125550111", "+13125550100")
    carrier.scheduler.stop()
    delivery = WebhookDelivery(receiver.url, signer, options)
    delivery.deliver(events[0])
    assert delivery.wait_idle(5)
    delivery.close()
    return delivery


def test_a_failed_delivery_is_retried_with_increasing_meta_attempt(signer):
    receiver = Receiver(failures=2)
    try:
        delivery = deliver_one(receiver, signer, fast_options())
        assert receiver.attempts() == [1, 2, 3]
        assert len({json.loads(b)["data"]["id"] for b in receiver.bodies}) == 1
        assert [a.status for a in delivery.log.attempts] == [500, 500, 200]
        for body, headers in zip(receiver.bodies, receiver.headers, strict=True):
            lowered = {k.lower(): v for k, v in headers.items()}
            WebhookVerifier(load_public_key(signer.public_key_b64)).verify(body, lowered)
    finally:
        receiver.close()


def test_a_slow_answer_counts_as_a_failure_and_is_retried(signer):
    receiver = Receiver(failures=1, stall_s=0.8)
    try:
        delivery = deliver_one(receiver, signer, fast_options(timeout_s=0.3))
        assert receiver.attempts() == [1, 2]
        assert delivery.log.attempts[0].status is None and delivery.log.attempts[1].ok
    finally:
        receiver.close()


def test_delivery_gives_up_after_max_attempts(signer):
    receiver = Receiver(failures=99)
    try:
        deliver_one(receiver, signer, fast_options(max_attempts=3))
        assert receiver.attempts() == [1, 2, 3]
    finally:
        receiver.close()


def test_duplicate_switch_delivers_the_same_event_twice(signer):
    receiver = Receiver()
    try:
        delivery = deliver_one(receiver, signer, fast_options(duplicate_rate=1.0))
        ids = [json.loads(b)["data"]["id"] for b in receiver.bodies]
        assert len(ids) == 2 and len(set(ids)) == 1
        assert sorted(a.duplicate for a in delivery.log.attempts) == [False, True]
    finally:
        receiver.close()
