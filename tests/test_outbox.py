"""outbox.py and stores/redis_outbox.py: each delivery once, claimed by one worker at a time, retried with backoff."""

from __future__ import annotations

import json
import time

import pytest

from call_log import CallLog
from outbox import DELIVERED, FAILED, PENDING, Delivery, DeliveryFailed, MemoryOutbox, OutboxWorker, backoff_s
from store_setup import isolated_prefix

MESSAGE = {"call_control_id": "v3:outbox", "caller": "+13125550111", "called": "+13125550100", "text": "call me",
           "taken_at": 1_800_000_000.0, "business": "Bright Smile Dental", "caller_name": None}


def delivery(item_id: str = "d1", channel: str = "sms") -> Delivery:
    return Delivery(item_id, channel, "+15555550123", MESSAGE)


@pytest.fixture(params=["memory", "redis"])
def make_outbox(request):
    """Outboxes sharing one store: on Redis, as two processes would (same prefix, own connections)."""
    if request.param == "memory":
        shared = MemoryOutbox(claim_s=0.3)
        yield lambda: shared
        return
    import redis

    from stores.redis import Outage
    from stores.redis_outbox import RedisOutbox

    server, prefix = request.getfixturevalue("redis_server"), isolated_prefix()
    clients = []

    def make():
        clients.append(redis.Redis.from_url(server.url))
        return RedisOutbox(clients[-1], prefix, Outage(), claim_s=0.3)

    yield make
    for client in clients:
        client.close()


def test_a_delivery_is_added_once_whatever_repeats_it(make_outbox):
    outbox = make_outbox()
    assert outbox.add(delivery(), time.time()) is True
    assert make_outbox().add(delivery(), time.time()) is False  # a redelivered webhook, another worker
    first = outbox.claim(time.time())
    assert first.id == "d1" and first.attempts == 1 and first.message == MESSAGE and first.to == "+15555550123"
    assert outbox.claim(time.time()) is None  # claimed: nobody else sends it meanwhile
    assert outbox.status("d1") == PENDING


def test_a_delivered_id_stays_delivered_and_is_never_sent_again(make_outbox):
    outbox = make_outbox()
    outbox.add(delivery(), time.time())
    claimed = outbox.claim(time.time())
    outbox.settle(Delivery(**{**claimed.__dict__, "status": DELIVERED}), time.time())
    assert outbox.status("d1") == DELIVERED
    time.sleep(0.4)  # past the claim: a settled delivery does not come back
    assert outbox.claim(time.time()) is None
    assert outbox.add(delivery(), time.time()) is False  # the same message taken again after a restart


def test_a_claim_that_lapses_is_taken_by_another_worker_with_the_same_id(make_outbox):
    """A worker that died mid-send: after the claim lapses, another one sends it again under the same id."""
    outbox, survivor = make_outbox(), make_outbox()
    outbox.add(delivery(), time.time())
    assert outbox.claim(time.time()).attempts == 1
    assert survivor.claim(time.time()) is None
    time.sleep(0.4)
    again = survivor.claim(time.time())
    assert again.id == "d1" and again.attempts == 2


def test_a_retry_waits_for_its_time(make_outbox):
    outbox = make_outbox()
    outbox.add(delivery(), time.time())
    claimed = outbox.claim(time.time())
    now = time.time()
    outbox.settle(Delivery(**{**claimed.__dict__, "error": "HTTP 503"}), now, retry_at=now + 0.5)
    assert outbox.claim(time.time()) is None
    time.sleep(0.6)
    assert outbox.claim(time.time()).attempts == 2


def test_due_deliveries_come_out_oldest_first(make_outbox):
    outbox = make_outbox()
    for name in ("d1", "d2", "d3"):
        outbox.add(delivery(name), time.time())
        time.sleep(0.01)
    assert [outbox.claim(time.time()).id for _ in range(3)] == ["d1", "d2", "d3"]


def test_backoff_doubles_from_the_first_wait_and_is_capped():
    assert [backoff_s(n, 2.0, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(1, 2.0, rng=lambda: 0.0) == 1.0  # jitter: between half and the whole wait
    assert backoff_s(30, 2.0, rng=lambda: 1.0) == 600.0


class Flaky:
    """A sender failing with the scripted errors first, then succeeding; it counts every attempt."""

    def __init__(self, *failures: DeliveryFailed):
        self.failures, self.calls = list(failures), []

    def __call__(self, item: Delivery) -> None:
        self.calls.append(item.attempts)
        if self.failures:
            raise self.failures.pop(0)


def run_worker(outbox, sender, tmp_path, max_attempts=4) -> tuple[OutboxWorker, list[dict]]:
    path = tmp_path / "calls.jsonl"
    worker = OutboxWorker(outbox, {"sms": sender}, CallLog(str(path)), max_attempts, first_backoff_s=0.05)
    deadline = time.monotonic() + 5
    while outbox.status("d1") == PENDING and time.monotonic() < deadline:
        if not worker.run_once():
            time.sleep(0.01)
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return worker, lines


def test_the_worker_retries_until_delivered_and_logs_the_outcome(make_outbox, tmp_path):
    outbox = make_outbox()
    outbox.add(delivery(), time.time())
    sender = Flaky(DeliveryFailed("HTTP 503", retry=True), DeliveryFailed("timed out", retry=True))
    _, lines = run_worker(outbox, sender, tmp_path)
    assert sender.calls == [1, 2, 3]
    assert outbox.status("d1") == DELIVERED
    assert lines == [{"record": "message_delivery", "call_control_id": "v3:outbox", "delivery_id": "d1",
                      "channel": "sms", "to": "+1********23", "status": "delivered", "attempts": 3, "error": None,
                      "at": lines[0]["at"]}]


def test_a_refusal_is_not_retried(make_outbox, tmp_path):
    outbox = make_outbox()
    outbox.add(delivery(), time.time())
    sender = Flaky(DeliveryFailed("HTTP 422", retry=False))
    _, lines = run_worker(outbox, sender, tmp_path)
    assert sender.calls == [1] and outbox.status("d1") == FAILED
    assert lines[0]["status"] == "failed" and lines[0]["error"] == "HTTP 422"


def test_the_worker_gives_up_after_max_attempts(make_outbox, tmp_path):
    outbox = make_outbox()
    outbox.add(delivery(), time.time())
    sender = Flaky(*[DeliveryFailed("HTTP 500", retry=True)] * 5)
    _, lines = run_worker(outbox, sender, tmp_path, max_attempts=3)
    assert sender.calls == [1, 2, 3] and outbox.status("d1") == FAILED
    assert lines[0]["attempts"] == 3 and lines[0]["error"] == "HTTP 500"


def test_the_worker_waits_out_a_store_outage_quietly_and_survives_a_bug(tmp_path, monkeypatch, caplog):
    """Redis unreachable (StoreUnavailable, logged once by the store): no log line per round. A bug: logged, paused.
    Either way the thread carries on and sends once the outbox answers again."""
    import outbox as module
    from stores import StoreUnavailable

    monkeypatch.setattr(module, "FAILURE_PAUSE_S", 0.05)
    store, sent = MemoryOutbox(), []
    real_claim, failures = store.claim, [StoreUnavailable("redis down"), StoreUnavailable("redis down"),
                                         RuntimeError("a bug")]

    def claim(now):
        if failures:
            raise failures.pop()
        return real_claim(now)

    store.claim = claim
    store.add(delivery(), time.time())
    worker = OutboxWorker(store, {"sms": sent.append}, CallLog(None), 3, first_backoff_s=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert [item.id for item in sent] == ["d1"] and store.status("d1") == DELIVERED
    assert caplog.text.count("delivery round failed") == 1 and "redis down" not in caplog.text


def test_a_redis_outage_is_the_stores_unavailable(redis_server):
    """Raised as StoreUnavailable, so the event that took the message runs again (stores/leases.py) and adds it once."""
    import redis

    from stores import StoreUnavailable
    from stores.redis import Outage
    from stores.redis_outbox import RedisOutbox

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    outbox = RedisOutbox(client, isolated_prefix(), Outage())
    with pytest.raises(StoreUnavailable):
        outbox.add(delivery(), time.time())
    with pytest.raises(StoreUnavailable):
        outbox.claim(time.time())
    client.close()
