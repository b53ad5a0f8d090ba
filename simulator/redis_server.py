"""A real redis-server on loopback: a free port, a temporary directory of its own, stopped when done.

For the tests, the benchmark and `python -m simulator demo --redis`; never a production Redis.

Usage::

    with RedisServer() as server:                 # no persistence: a restart starts empty
        client = redis.Redis.from_url(server.url)
        server.restart()                          # stop, then start again on the same port and directory
        server.kill()                             # SIGKILL, as a crash or the OOM killer would
        server.start()
    with RedisServer(appendonly=True) as server:  # every write fsynced to the AOF: survives restart() and kill()
        ...

Test fixtures call tests/redis_available.py's `require_redis_or_skip()` first.
The server reads no config file, binds 127.0.0.1 only, and writes nothing outside its directory (its log,
and the AOF when asked for); leaving the `with` block stops it and removes the directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10.0
# The free port is found by binding port 0 and letting go; another process may take it before redis binds.
PORT_ATTEMPTS = 3


class RedisServerError(RuntimeError):
    """redis-server is missing, did not start, or did not answer in time; the message has its log tail."""


class _PortTaken(RedisServerError):
    """The free port was taken before redis-server bound it: try another one."""


def redis_server_binary() -> str | None:
    """The redis-server on PATH, or None."""
    return shutil.which("redis-server")


def missing_redis_message() -> str:
    """One line: what is missing and how to install it."""
    return (
        "redis-server not found on PATH: install it with `apt-get install -y redis-server` (Debian/Ubuntu) "
        "or `brew install redis` (macOS)"
    )


class RedisServer:
    """One redis-server process on 127.0.0.1 that owns a temporary directory; see the module docstring."""

    def __init__(self, *, appendonly: bool = False, startup_timeout_s: float = 10.0):
        self.appendonly = appendonly
        self.startup_timeout_s = startup_timeout_s
        self._directory: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        """The loopback port, chosen by the first start() and kept by every later one."""
        if self._port is None:
            raise RedisServerError("the redis server was never started, so it has no port yet")
        return self._port

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def directory(self) -> Path:
        """The server's working directory: its log, and the AOF when appendonly."""
        if self._directory is None:
            raise RedisServerError("the redis server was never started, so it has no directory yet")
        return self._directory

    @property
    def running(self) -> bool:
        """The process is alive (it may still be starting or loading)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; the first start picks the port and directory."""
        if self.running:
            return self
        if redis_server_binary() is None:
            raise RedisServerError(missing_redis_message())
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="receptionist-redis-"))
        if self._port is not None:
            self._launch(self._port)
            return self
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                self._launch(_free_port())
                return self
            except _PortTaken:
                continue
        self._launch(_free_port())
        return self

    def stop(self) -> None:
        """SIGTERM and wait for the exit: no RDB is written (no save points); with appendonly the AOF is synced."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    def kill(self) -> None:
        """SIGKILL and wait for the exit: nothing is flushed, as in a crash."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    def restart(self) -> RedisServer:
        """stop() then start() on the same port and directory: with appendonly the data survives, else it is gone."""
        self.stop()
        return self.start()

    def flush(self) -> None:
        """FLUSHALL: every key of every database is gone."""
        reply = _ask(self.port, "FLUSHALL")
        if reply != b"+OK":
            raise RedisServerError(f"FLUSHALL answered {reply!r}")

    def close(self) -> None:
        """Stop the server and remove its directory; start() afterwards begins afresh on a new port."""
        self.stop()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory = None
        self._port = None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote, over every run since the first start."""
        path = self.directory / "redis.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _command(self, port: int) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        return [
            redis_server_binary() or "redis-server",
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(self.directory),
            "--save", "",
            *persistence,
            "--daemonize", "no",
        ]

    def _launch(self, port: int) -> None:
        """Run redis-server on `port` and wait until this very process answers PING."""
        log_path = self.directory / "redis.log"
        with open(log_path, "ab") as log:
            offset = log.tell()
            self._process = subprocess.Popen(
                self._command(port), cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail_exited(port, log_path, offset)
            if _is_ready(port, self._process.pid):
                self._port = port
                return
            time.sleep(0.05)
        self.kill()
        raise RedisServerError(
            f"redis-server did not answer PING on port {port} within {self.startup_timeout_s} s:\n{self.log_tail()}"
        )

    def _fail_exited(self, port: int, log_path: Path, offset: int) -> NoReturn:
        code = self._process.returncode if self._process else None
        self._process = None
        with open(log_path, "rb") as log:
            log.seek(offset)
            output = log.read().decode(errors="replace")
        error = _PortTaken if "Address already in use" in output and self._port is None else RedisServerError
        tail = "\n".join(output.splitlines()[-20:])
        raise error(f"redis-server exited with {code} on port {port}:\n{tail}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _is_ready(port: int, pid: int) -> bool:
    """PING answers PONG (not LOADING) and the server on the port is this process, not a stranger."""
    try:
        return _ask(port, "PING") == b"+PONG" and f"process_id:{pid}\r\n".encode() in _ask(port, "INFO", "server")
    except OSError:  # refused while starting, or reset by a server that is exiting: not ready yet
        return False


def _ask(port: int, *words: str, timeout_s: float = 1.0) -> bytes:
    """Send one command; its reply: a status or error line without CRLF, or a bulk string's bytes."""
    encoded = [word.encode() for word in words]
    request = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded)
    with socket.create_connection((HOST, port), timeout=timeout_s) as sock, sock.makefile("rb") as reader:
        sock.sendall(request)
        first = reader.readline().rstrip(b"\r\n")
        if first.startswith(b"$") and first != b"$-1":
            return reader.read(int(first[1:]))
        return first
