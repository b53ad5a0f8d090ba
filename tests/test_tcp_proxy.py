"""The fault proxy (tests/tcp_proxy.py) in front of a real redis: forwarding, delay, cut, refuse, pause, clean-up."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from background import wait_until
from redis_available import require_redis_or_skip
from simulator.redis_server import RedisServer
from tcp_proxy import TcpProxy

DELAY_S = 0.2


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """One redis-server for the module, flushed by `proxy` before each test."""
    require_redis_or_skip()
    with RedisServer() as server:
        yield server


@pytest.fixture
def proxy(server) -> Iterator[TcpProxy]:
    """A proxy in front of `server`; after the test, no proxy thread may be left running."""
    server.flush()
    with TcpProxy("127.0.0.1", server.port) as proxy:
        yield proxy
    assert proxy_threads() == []


@pytest.fixture
def connect() -> Iterator:
    """`connect(url, **options)`: a redis client that never retries by itself; closed after the test."""
    clients: list[redis.Redis] = []

    def make(url: str, **options) -> redis.Redis:
        options = {"retry": None, "socket_timeout": 5, "socket_connect_timeout": 5, **options}
        client = redis.Redis.from_url(url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def proxy_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("tcp-proxy-")]


def blocked(observer: redis.Redis) -> bool:
    """One client waits in a blocking command on the server `observer` talks to."""
    return observer.info("clients")["blocked_clients"] == 1


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def test_commands_and_large_values_pass_through_both_ways(server, proxy, connect):
    client = connect(proxy.url_for())
    value = os.urandom(1_000_000)  # many chunks each way
    client.set("recording", value)
    assert client.get("recording") == value
    assert connect(server.url).get("recording") == value
    assert (proxy.accepted, proxy.connections) == (1, 1)
    assert proxy.url_for() == f"redis://127.0.0.1:{proxy.port}/0"
    assert proxy.url_for("rediss", db=2) == f"rediss://127.0.0.1:{proxy.port}/2"


def test_delay_holds_each_chunk_in_both_directions(proxy, connect):
    client = connect(proxy.url_for())
    client.ping()  # connect first: only the PING is timed
    proxy.delay_s = DELAY_S
    assert timed(client.ping) >= 2 * DELAY_S  # the PING held once on the way in, the PONG once on the way out
    proxy.delay_s = 0
    assert client.ping() is True


def test_after_cut_the_next_command_fails_and_the_one_after_reconnects(proxy, connect):
    client = connect(proxy.url_for(), single_connection_client=True)
    client.set("call", "open")
    proxy.cut()
    assert proxy.connections == 0
    with pytest.raises(redis.ConnectionError):
        client.get("call")
    assert client.get("call") == b"open"
    assert (proxy.accepted, proxy.connections) == (2, 1)


def test_a_command_in_flight_fails_when_cut_and_the_pool_reconnects(server, proxy, connect):
    client = connect(proxy.url_for())
    observer = connect(server.url)
    cutter = threading.Thread(target=lambda: wait_until(lambda: blocked(observer), 5) and proxy.cut())
    cutter.start()
    try:
        with pytest.raises(redis.ConnectionError):
            client.blpop(["no-such-list"], timeout=5)
    finally:
        cutter.join()
    assert client.ping() is True
    assert proxy.accepted == 2


def test_a_pool_client_quietly_replaces_a_connection_cut_while_idle(proxy, connect):
    client = connect(proxy.url_for())
    client.set("call", "open")
    proxy.cut()
    assert client.get("call") == b"open"  # redis-py's pool saw the closed connection and opened a new one
    assert proxy.accepted == 2


def test_refuse_fails_new_connections_and_leaves_open_ones_alone(proxy, connect):
    held = connect(proxy.url_for(), single_connection_client=True)
    held.ping()
    proxy.refuse = True
    with pytest.raises(redis.ConnectionError):
        connect(proxy.url_for()).ping()
    assert held.ping() is True
    assert proxy.accepted == 1
    proxy.refuse = False
    assert connect(proxy.url_for()).ping() is True


def test_server_down_is_cut_plus_refuse(proxy, connect):
    client = connect(proxy.url_for())
    client.ping()
    proxy.cut()
    proxy.refuse = True
    with pytest.raises(redis.ConnectionError):
        client.ping()
    proxy.refuse = False
    assert client.ping() is True


def test_paused_holds_every_reply_until_resumed(proxy, connect):
    client = connect(proxy.url_for(), socket_timeout=DELAY_S)
    client.ping()
    proxy.paused = True
    with pytest.raises(redis.TimeoutError):
        client.ping()
    with pytest.raises(redis.TimeoutError):
        connect(proxy.url_for(), socket_timeout=DELAY_S, socket_connect_timeout=DELAY_S).ping()
    proxy.paused = False
    assert client.ping() is True


def test_close_ends_every_thread_and_releases_the_port(server, connect):
    with TcpProxy("127.0.0.1", server.port) as proxy:
        clients = [connect(proxy.url_for(), single_connection_client=True) for _ in range(3)]
        for client in clients:
            client.ping()
        assert proxy.connections == 3
        assert len(proxy_threads()) == 1 + 2 * 3  # the accept loop, and one thread per direction per connection
    assert proxy_threads() == []
    assert proxy.connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    with pytest.raises(redis.ConnectionError):
        clients[0].ping()


def test_delay_cannot_be_negative():
    with TcpProxy("127.0.0.1", 9) as proxy, pytest.raises(ValueError, match="delay_s"):
        proxy.delay_s = -1
