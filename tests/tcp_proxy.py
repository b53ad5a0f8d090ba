"""A TCP proxy on 127.0.0.1 between a client and a server, for fault tests: a slow, hung, down or cut server.

Usage::

    with RedisServer() as server, TcpProxy("127.0.0.1", server.port) as proxy:
        client = redis.Redis.from_url(proxy.url_for(), retry=None)
        proxy.delay_s = 0.2   # slow: every chunk, both ways, is held 0.2 s before it is passed on
        proxy.paused = True   # hung: nothing new is accepted and nothing is passed on until paused is False
        proxy.refuse = True   # down: each new connection is reset as soon as it is accepted
        proxy.cut()           # every open connection is closed at once (a restart, a network blip)

Down is `refuse = True` plus `cut()`. `refuse` resets accepted connections rather than closing the listening
socket because a truly refused connect needs the port given up, and another process could take it before the
proxy listens again; either way the client's connection fails before any reply. `paused` models a server
that is alive but does not answer (stopped, swapping, a stalled network): the kernel still completes new
connections, so clients see their timeouts, not errors.

Each client connection gets its own upstream connection and two threads, one per direction; a close on
either side closes both (no half-close). The knobs can be changed from any thread while traffic flows and
apply from the next chunk or connection on. `close()` cuts everything and joins every thread, and the
`with` block calls it, so nothing outlives a test.

redis-py note: its pool checks an idle connection before handing it out and quietly replaces one that was
closed, so after `cut()` the next command of a pool client succeeds on a new connection. A command in
flight during the cut fails, and so does the next command of a `single_connection_client=True` client.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
CHUNK_BYTES = 65536
ACCEPT_POLL_S = 0.05  # how soon the accept loop sees close() and paused
JOIN_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: socket.socket
    upstream: socket.socket
    cut: bool = False
    pumps_running: int = 2

    def shut(self) -> None:
        """Wake both pumps (a blocked recv returns, a blocked send fails); the last pump closes the sockets."""
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already shut, or reset by the peer: nothing left to wake
                continue


class TcpProxy:
    """Forwards 127.0.0.1:port to (target_host, target_port) with fault knobs; see the module docstring."""

    def __init__(self, target_host: str, target_port: int, *, connect_timeout_s: float = 5.0):
        self.target = (target_host, target_port)
        self.connect_timeout_s = connect_timeout_s
        self._changed = threading.Condition()  # guards every field below; notified on any change
        self._delay_s = 0.0
        self._paused = False
        self._refuse = False
        self._closed = False
        self._accepted = 0
        self._links: set[_Link] = set()
        self._threads: set[threading.Thread] = set()
        self._listener = socket.create_server((HOST, 0), backlog=128)
        self._listener.settimeout(ACCEPT_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._serve, name=f"tcp-proxy-{self.port}-accept", daemon=True)
        self._acceptor.start()

    def url_for(self, scheme: str = "redis", db: int = 0) -> str:
        """The proxy's address as a URL, e.g. redis://127.0.0.1:PORT/0"""
        return f"{scheme}://{HOST}:{self.port}/{db}"

    @property
    def delay_s(self) -> float:
        """Seconds each chunk is held before it is passed on, in both directions."""
        with self._changed:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"delay_s must be >= 0, not {value}")
        with self._changed:
            self._delay_s = value
            self._changed.notify_all()

    @property
    def paused(self) -> bool:
        """True: new connections wait unaccepted and no chunk is passed on (a hung server)."""
        with self._changed:
            return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        with self._changed:
            self._paused = value
            self._changed.notify_all()

    @property
    def refuse(self) -> bool:
        """True: each new connection is reset once accepted (a server that is down); open ones carry on."""
        with self._changed:
            return self._refuse

    @refuse.setter
    def refuse(self, value: bool) -> None:
        with self._changed:
            self._refuse = value

    @property
    def connections(self) -> int:
        """Client connections open now."""
        with self._changed:
            return len(self._links)

    @property
    def accepted(self) -> int:
        """Client connections forwarded since the proxy started (refused ones not counted)."""
        with self._changed:
            return self._accepted

    def cut(self) -> None:
        """Close every open connection, both sides, and return once they are closed."""
        with self._changed:
            links = set(self._links)
            for link in links:
                link.cut = True
                link.shut()
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: not links & self._links, timeout=JOIN_TIMEOUT_S):
                raise RuntimeError(f"tcp proxy {self.port}: connections still open after cut()")

    def close(self) -> None:
        """Stop accepting, cut every connection, join every thread and release the port."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._acceptor.join(JOIN_TIMEOUT_S)
        self._listener.close()
        self.cut()
        with self._changed:
            threads = set(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)
        alive = [thread.name for thread in (self._acceptor, *threads) if thread.is_alive()]
        if alive:
            raise RuntimeError(f"tcp proxy {self.port}: threads still running after close(): {alive}")

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        """Accept loop: waits while paused, polls so that close() is seen within ACCEPT_POLL_S."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or not self._paused)
                if self._closed:
                    return
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, ConnectionAbortedError):  # nobody came, or the client gave up first
                continue
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        if self.refuse:
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout_s)
        except OSError as exc:  # the server really is down: the client sees what `refuse` shows it
            log.debug("tcp proxy %s: upstream %s:%s unreachable: %s", self.port, *self.target, exc)
            _reset(client)
            return
        link = _Link(_ready(client), _ready(upstream))
        with self._changed:
            self._accepted += 1
            self._links.add(link)
            self._threads = {thread for thread in self._threads if thread.is_alive()}
            for name, source, sink in (("up", link.client, link.upstream), ("down", link.upstream, link.client)):
                thread = threading.Thread(
                    target=self._pump, args=(link, source, sink), name=f"tcp-proxy-{self.port}-{name}", daemon=True
                )
                self._threads.add(thread)
                thread.start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        """Pass chunks from source to sink until either side closes or the link is cut."""
        try:
            while chunk := source.recv(CHUNK_BYTES):
                if not self._hold(link):
                    break
                sink.sendall(chunk)
        except OSError as exc:  # a reset, or the sockets shut by cut(): this link is over either way
            log.debug("tcp proxy %s: link ends: %s", self.port, exc)
        finally:
            self._end(link)

    def _hold(self, link: _Link) -> bool:
        """Wait out delay_s and any pause; False when the link is cut meanwhile."""
        with self._changed:
            release_at = time.monotonic() + self._delay_s
            while not link.cut:
                remaining = release_at - time.monotonic()
                if not self._paused and remaining <= 0:
                    return True
                self._changed.wait(None if self._paused else remaining)
            return False

    def _end(self, link: _Link) -> None:
        """One pump is done, so the link is: wake the other; the second one out closes the sockets.

        Sockets are shut and closed only under the lock, and closed only once no pump can be blocked on them.
        """
        with self._changed:
            link.cut = True
            link.pumps_running -= 1
            link.shut()
            if link.pumps_running == 0:
                link.client.close()
                link.upstream.close()
                self._links.discard(link)
            self._changed.notify_all()


def _ready(sock: socket.socket) -> socket.socket:
    """Blocking, and small writes leave at once: the proxy must add no delay of its own."""
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the client sees a reset connection, the closest thing to a refused one."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
