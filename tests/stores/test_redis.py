"""stores/redis.py through the app: Redis down, slow or restarted; keys that expire; config of the store.

Each test that breaks Redis gets a private redis-server (or a TCP proxy in front of the session's), so the
other tests never see it.
"""

from __future__ import annotations

import copy
import json
import logging
import time

import pytest
import redis

from background import wait_until, watching_logs
from config import ConfigError, build_settings
from fixtures import load_fixture, sign, with_ids
from redis_available import require_redis_or_skip
from simulator.redis_server import RedisServer
from stores.redis import RedisStore
from tcp_proxy import TcpProxy

REFUSED = {"error": "call store unavailable, retry later", "status": 503}
UNAVAILABLE = "redis unavailable"


@pytest.fixture
def private_redis():
    require_redis_or_skip()
    with RedisServer() as server:
        yield server


@pytest.fixture
def proxy(redis_server):
    with TcpProxy("127.0.0.1", redis_server.port) as tcp:
        yield tcp


@pytest.fixture
def redis_app(make_app, raw_config, telnyx, scripted_brain, keypair):
    """`redis_app(url, timeout_s)` builds the service on that Redis; returns (app, post a signed webhook)."""

    def build(url: str, timeout_s: float = 0.3):
        raw = copy.deepcopy(raw_config)
        raw["redis"]["timeout_s"] = timeout_s
        service = make_app(raw, env={"REDIS_URL": url}, telnyx=telnyx, brain=scripted_brain)
        assert isinstance(service.extensions["receptionist"].store, RedisStore)
        client = service.test_client()

        def post(body: dict):
            raw_body = json.dumps(body).encode()
            headers = sign(raw_body, keypair[0], str(int(time.time())))
            return client.post("/webhooks/telnyx", data=raw_body, headers=headers, content_type="application/json")

        return service, post

    return build


def new_call() -> list[dict]:
    """call.initiated then call.answered of a new call, with fresh ids."""
    call_control_id = f"v3:redis-{time.monotonic_ns()}"
    return [with_ids(load_fixture(name), call_control_id=call_control_id) for name in ("call_initiated",
                                                                                       "call_answered")]


def messages(records) -> list[str]:
    return [record.getMessage() for record in records.records]


def test_redis_down_refuses_webhooks_with_503_logs_once_and_recovers_without_a_restart(
    redis_app, telnyx, private_redis, settle
):
    service, post_webhook = redis_app(private_redis.url)
    client = service.test_client()
    initiated, answered = new_call()
    with watching_logs(logging.INFO) as records:
        private_redis.stop()
        answers = [post_webhook(initiated) for _ in range(5)]
        health = client.get("/healthz")
        private_redis.start()  # the same port, empty: no persistence
        assert wait_until(lambda: client.get("/healthz").status_code == 200, 5)
        accepted = post_webhook(initiated)
        settle(service)
        post_webhook(answered)
        settle(service)
    assert [(a.status_code, a.json) for a in answers] == [(503, REFUSED)] * 5
    assert health.status_code == 503 and health.json["status"] == "store_unavailable"
    assert sum(UNAVAILABLE in m for m in messages(records)) == 1, messages(records)
    assert sum("redis is back" in m for m in messages(records)) == 1
    assert not [r for r in records.records if r.exc_info], "a Redis error must never be a traceback"
    assert accepted.status_code == 200 and accepted.json == {"status": "accepted"}
    assert telnyx.actions() == ["answer", "speak", "transcription_start"]  # the refused webhook, delivered again


def test_a_refused_webhook_was_neither_queued_nor_marked_seen(
    redis_app, telnyx, proxy, settle
):
    service, post_webhook = redis_app(proxy.url_for())
    initiated, _ = new_call()
    proxy.refuse = True
    proxy.cut()
    assert post_webhook(initiated).status_code == 503
    proxy.refuse = False
    assert post_webhook(initiated).json == {"status": "accepted"}  # not a "duplicate"
    settle(service)
    assert telnyx.actions() == ["answer"]


def test_redis_slower_than_its_timeout_is_a_503_not_a_hang_and_a_slow_but_timely_redis_still_serves(
    redis_app, telnyx, proxy, settle
):
    service, post_webhook = redis_app(proxy.url_for(), timeout_s=1.0)
    first, second = new_call(), new_call()
    proxy.delay_s = 0.05  # every exchange 0.1 s slower: under the timeout
    assert post_webhook(first[0]).status_code == 200
    settle(service, 15)
    proxy.delay_s = 1.5  # over it
    started = time.monotonic()
    slow = post_webhook(second[0])
    waited_s = time.monotonic() - started
    proxy.delay_s = 0.0
    assert wait_until(lambda: post_webhook(second[0]).status_code == 200, 10)
    settle(service, 15)
    assert (slow.status_code, slow.json) == (503, REFUSED)
    assert waited_s < 3.0  # the client's timeout (twice, with a health-check PING), never the proxy's whole delay
    assert telnyx.actions(first[0]["data"]["payload"]["call_control_id"]) == ["answer"]
    # The refused webhook may still have been queued (Redis ran it; only its answer came too late), and a claim
    # made while Redis was slow may have lost its answer too: that call is taken over when its lease lapses.
    second_call = second[0]["data"]["payload"]["call_control_id"]
    assert wait_until(lambda: telnyx.actions(second_call) == ["answer"], 3.0 + 5), telnyx.actions(second_call)


def test_every_key_of_a_call_expires_and_the_shared_sets_forget_an_ended_call(
    redis_app, raw_config, redis_server, settle
):
    service, post_webhook = redis_app(redis_server.url)
    prefix = raw_config["redis"]["key_prefix"]
    initiated, answered = new_call()
    call_control_id = initiated["data"]["payload"]["call_control_id"]
    for body in (initiated, answered):
        post_webhook(body)
        settle(service)
    client = redis.Redis.from_url(redis_server.url)
    keys = {key.decode() for key in client.scan_iter(f"{prefix}*")}
    shared = {f"{prefix}{name}" for name in ("ready", "timers", "live", "claims")}
    per_call = keys - shared
    assert f"{prefix}call:{call_control_id}" in per_call
    assert all(client.pttl(key) > 0 for key in per_call), {key: client.pttl(key) for key in per_call}
    hangup = with_ids(load_fixture("call_hangup"), call_control_id=call_control_id)
    post_webhook(hangup)
    settle(service)
    assert client.zscore(f"{prefix}live", call_control_id) is None
    assert not [m for m in client.zrange(f"{prefix}timers", 0, -1) if call_control_id.encode() in m
                and b"expired" in m], "an ended call's expiry timer is dropped"
    assert client.exists(f"{prefix}ended:{call_control_id}") and client.pttl(f"{prefix}ended:{call_control_id}") > 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "localhost:6379", "redis:/x"])
def test_a_redis_url_that_is_not_redis_is_refused_at_startup_without_echoing_it(raw_config, url):
    with pytest.raises(ConfigError) as refused:
        build_settings(raw_config, {"REDIS_URL": url + "?password=hunter2", "TELNYX_PUBLIC_KEY": ""}
                       | {"TELNYX_PUBLIC_KEY": "A" * 43 + "="})
    assert any(problem.startswith("REDIS_URL: must start with redis://") for problem in refused.value.problems)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("prefix", ["", "no-colon", "white space:", "x" * 70 + ":"])
def test_a_key_prefix_that_could_collide_or_break_keys_is_refused(raw_config, prefix):
    raw_config["redis"]["key_prefix"] = prefix
    raw_config["webhook"]["verify_signatures"] = False
    with pytest.raises(ConfigError, match="redis.key_prefix"):
        build_settings(raw_config, {})
