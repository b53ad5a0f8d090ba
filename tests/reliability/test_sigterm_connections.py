"""RELIABILITY: what a webhook on a new connection gets while the service stops (README, "Restarts").

gunicorn, as deployed, stops accepting connections within a second of SIGTERM (its gevent worker looks once a
second). A request on a connection already open, or on one accepted before that, is still answered (503 from
`/healthz`, and for webhooks of calls the worker does not hold); after that a new connection gets no HTTP answer
at all: it waits unaccepted until the worker exits and is then reset, or is refused once the socket is closed.
Telnyx treats each as a failed delivery and delivers the webhook again.
"""

from __future__ import annotations

import signal
import socket
import time

import requests

from deadline_worker import STOPPING_WAIT_S
from figures import record
from simulator.network import Network, NetworkOptions
from simulator.service import start_service

# gunicorn's gevent worker looks at its `alive` flag once a second, then closes its listening socket.
STOPS_ACCEPTING_S = 1.5


def new_connection(port: int, results: list[str]) -> None:
    """Open a connection and send a request; record the status line, or how the connection failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: receptionist\r\n\r\n")
            answer = sock.recv(64)
        results.append(answer.split(b"\r\n")[0].decode() if answer else "closed without an answer")
    except ConnectionResetError:
        results.append("reset")
    except ConnectionRefusedError:
        results.append("refused")
    except OSError as exc:
        results.append(repr(exc))


def test_after_sigterm_a_new_connection_gets_no_http_answer_and_an_open_one_gets_503():
    """README, "Restarts": a second after SIGTERM the worker accepts no connection (a new one waits, then is reset,
    or is refused once the socket is closed), while a request on a connection already open gets 503."""
    with Network(NetworkOptions(speed=0.05)) as network, start_service(network.service_env()) as service:
        port = int(service.url.rsplit(":", 1)[1])
        kept_alive, idle = requests.Session(), requests.Session()
        assert [s.get(f"{service.url}/healthz", timeout=5).status_code for s in (kept_alive, idle)] == [200, 200]
        service.process.send_signal(signal.SIGTERM)
        statuses: list[int] = []
        while not statuses or statuses[-1] == 200:  # served normally until the worker hears of the signal
            statuses.append(kept_alive.get(f"{service.url}/healthz", timeout=5).status_code)
        results: list[str] = []
        time.sleep(STOPS_ACCEPTING_S)
        new_connection(port, results)  # the idle connection keeps the worker up for a moment
        new_connection(port, results)
        exit_code = service.process.wait(30)
    assert statuses[-1] == 503 and len(statuses) < 50, statuses
    assert results[0] in ("reset", "refused") and results[1] == "refused", results
    assert exit_code == 0
    record("SIGTERM: a new connection once the worker stops", len(results), sum(r in ("reset", "refused")
           for r in results), f"no HTTP answer ({', '.join(results)}); Telnyx delivers the webhook again")


def whole_response(sock: socket.socket) -> bytes:
    """Head and body of one answer: gunicorn writes them apart, and one recv may return the head alone."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a whole body: {head!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_on_sigterm_an_idle_kept_alive_connection_is_closed_after_a_second_not_after_keepalive():
    """It must not hold the stopping worker for `keepalive` seconds that belong to the drain (gunicorn.conf.py);
    the second is for a request racing the signal on it, which gets its answer."""
    with Network(NetworkOptions(speed=0.05)) as network, start_service(network.service_env()) as service:
        port = int(service.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: receptionist\r\n\r\n")
            assert whole_response(sock).startswith(b"HTTP/1.1 200 ")
            stopped_at = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            closed = sock.recv(4096)
            closed_after_s = time.monotonic() - stopped_at
        exit_code = service.process.wait(30)
    assert closed == b"" and STOPPING_WAIT_S - 0.2 <= closed_after_s < STOPPING_WAIT_S + 1.0, (closed, closed_after_s)
    assert exit_code == 0
