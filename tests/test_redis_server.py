"""The real-redis helper (simulator/redis_server.py) and the skip rule (tests/redis_available.py): ports,
persistence across restart and kill, clean-up, skip rules."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis

import redis_available
from redis_available import require_redis_or_skip
from simulator import redis_server
from simulator.redis_server import RedisServer, RedisServerError, missing_redis_message


@pytest.fixture
def needs_redis() -> str:
    """The redis-server binary; skips (or fails under RECEPTIONIST_REQUIRE_REDIS=1) without one."""
    return require_redis_or_skip()


@pytest.fixture
def connect(needs_redis) -> Iterator:
    """`connect(url)`: a redis client that does not retry; every one made is closed after the test."""
    clients: list[redis.Redis] = []

    def make(url: str) -> redis.Redis:
        client = redis.Redis.from_url(url, retry=None, socket_timeout=5, socket_connect_timeout=5)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def refuses(port: int) -> bool:
    """Nothing listens on the loopback port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_server_answers_on_its_own_loopback_port(connect):
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = connect(server.url)
        assert client.ping() is True
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_two_servers_get_different_ports_directories_and_data(connect):
    with RedisServer() as first, RedisServer() as second:
        assert first.port != second.port
        assert first.directory != second.directory
        connect(first.url).set("where", "first")
        assert connect(second.url).get("where") is None


def test_restart_without_persistence_loses_the_data_and_keeps_port_and_directory(connect):
    with RedisServer() as server:
        port, directory = server.port, server.directory
        connect(server.url).set("call", "in progress")
        server.restart()
        assert (server.port, server.directory) == (port, directory)
        assert connect(server.url).get("call") is None
        assert sorted(path.name for path in directory.iterdir()) == ["redis.log"]


def test_restart_with_appendonly_keeps_the_data(connect):
    with RedisServer(appendonly=True) as server:
        port = server.port
        client = connect(server.url)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        client.set("call", "in progress")
        server.restart()
        assert server.port == port
        assert connect(server.url).get("call") == b"in progress"


@pytest.mark.parametrize(("appendonly", "after_crash"), [(False, None), (True, b"in progress")])
def test_kill_then_start_serves_again_on_the_same_port(connect, appendonly, after_crash):
    with RedisServer(appendonly=appendonly) as server:
        port = server.port
        connect(server.url).set("call", "in progress")
        server.kill()
        assert not server.running
        assert refuses(port)
        server.start()
        assert server.port == port
        assert connect(server.url).get("call") == after_crash


def test_flush_empties_every_database(connect):
    with RedisServer() as server:
        connect(server.url).set("a", "1")
        connect(server.url.replace("/0", "/3")).set("b", "2")
        server.flush()
        assert connect(server.url).dbsize() == 0
        assert connect(server.url.replace("/0", "/3")).dbsize() == 0


def test_leaving_the_block_stops_the_server_and_removes_its_directory(needs_redis):
    with RedisServer(appendonly=True) as server:
        port, directory = server.port, server.directory
        assert directory.is_dir()
    assert not server.running
    assert refuses(port)
    assert not directory.exists()


def test_a_port_taken_while_stopped_fails_the_restart_with_the_server_log(needs_redis):
    with RedisServer() as server:
        port = server.port
        server.stop()
        with socket.create_server(("127.0.0.1", port)), pytest.raises(RedisServerError) as failure:
            server.start()
    assert f"port {port}" in str(failure.value)
    assert "Address already in use" in str(failure.value)


def test_without_the_binary_a_test_is_skipped_with_how_to_install(monkeypatch):
    monkeypatch.setattr(redis_available, "redis_server_binary", lambda: None)
    monkeypatch.delenv(redis_available.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_redis_or_skip()
    assert skipped.value.msg == missing_redis_message()
    assert "\n" not in missing_redis_message()
    assert "apt-get install -y redis-server" in missing_redis_message()
    assert "brew install redis" in missing_redis_message()


def test_without_the_binary_and_redis_required_the_test_fails(monkeypatch):
    monkeypatch.setattr(redis_available, "redis_server_binary", lambda: None)
    monkeypatch.setenv(redis_available.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_redis_or_skip()
    assert failed.value.msg == missing_redis_message()


def test_without_the_binary_start_says_how_to_install(monkeypatch):
    monkeypatch.setattr(redis_server, "redis_server_binary", lambda: None)
    with pytest.raises(RedisServerError, match="apt-get install"):
        RedisServer().start()
