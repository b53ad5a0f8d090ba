"""A fake Telnyx Call Control API on 127.0.0.1: real paths, real error envelopes, command_id dedup, faults.

Given a Carrier (the simulated network), commands change simulated calls and a call's state can refuse
them (422 90015, 90018, 90034, 90054). Without one, `FakeTelnyx()` accepts every well-formed command for
any call: what the security and reliability tests use to drive the real TelnyxClient. Either way every
request is recorded (arrival time, call_control_id, action, body, Authorization, status, error code,
dedup, fault) so tests and the runner can assert on exactly what "Telnyx" saw.

Faults (simulator/faults.py) are scripted per action and optionally per call::

    fake.plan("speak", http_error(503), CUT)            # the next two speaks, once each, in order
    fake.plan("answer", RESET, call=call_control_id)     # only this call's next answer
    fake.always("hangup", http_error(422, "90018"))      # every hangup, until clear_faults()
    fake.plan("speak", redirect(302, other_host.url))   # send the client elsewhere (see OtherHost)

For each request the fake takes the next fault planned for its call, else the next planned for every
call, else the `always` fault for its call, else the one for every call, else maybe a random one from
the `FaultPlan` it was given.
"""

from __future__ import annotations

import io
import json
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from simulator import arrival
from simulator.carrier import Carrier
from simulator.fake_messaging import MESSAGES_PATH, MESSAGING_ACTION, FakeMessaging, validate_message
from simulator.faults import AMBIGUOUS, Fault, FaultPlan, http_error
from simulator.validation import ACTIONS, validate

ACTION_PATH = re.compile(r"^/v2/calls/(?P<call_control_id>[^/]+)/actions/(?P<action>[^/?]+)$")
DEDUP_WINDOW_S = 60.0
STREAM_BLOCK_BYTES = 64 * 1024  # what a huge or endless body is written in
ERROR_TITLES = {
    "10007": "Unexpected error",
    "10009": "Authentication failed",
    "10011": "Too many requests",
    "90015": "Invalid Call Control ID",
    "90018": "Call has already ended",
    "90034": "Call not answered yet",
    "90054": "Transcription already in progress",
}


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received and how it answered."""

    at: float  # when the fake's thread took the request (monotonic)
    call_control_id: str
    action: str
    body: Any
    status: int  # 0 when the connection was reset without an answer
    code: str | None = None
    deduplicated: bool = False
    fault: str | None = None  # Fault.label of the fault injected, if any
    acted: bool = False  # the command was carried out (even when a fault then spoiled the answer)
    authorization: str = ""
    # When its bytes had reached the machine: the kernel's stamp on Linux (simulator/arrival.py), else `at`.
    # Sooner than `at` by however long the fake's thread waited for the GIL; what the bench times against.
    arrived_at: float = 0.0

    @property
    def ok(self) -> bool:
        """The client got a clean 200."""
        return self.status == 200 and self.fault is None

    @property
    def command_id(self) -> str | None:
        return self.body.get("command_id") if isinstance(self.body, dict) else None


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    transport: Fault | None = None  # reset, cut, slow or trickle: how the answer travels
    delay_s: float = 0.0


@dataclass
class _Outcome:
    reply: Reply
    body: Any = None
    deduplicated: bool = False
    fault: Fault | None = None
    acted: bool = False


def ok() -> Reply:
    return Reply(200, {"data": {"result": "ok"}})


def error(status: int, code: str, title: str, detail: str = "", pointer: str | None = None) -> Reply:
    item: dict[str, Any] = {"code": code, "title": title, "detail": detail or title}
    if pointer is not None:
        item["source"] = {"pointer": pointer}
    return Reply(status, {"errors": [item]})


class FakeTelnyx:
    """The API half of the simulator. Start with `start()`, stop with `stop()`; `base_url` ends in /v2.

    Given `tls` (a server SSLContext) it speaks HTTPS, as the real API does, for tests of the client's TLS path.
    """

    def __init__(self, carrier: Carrier | None = None, faults: FaultPlan | None = None, *, port: int = 0,
                 seed: int | None = None, tls: ssl.SSLContext | None = None):
        self.carrier = carrier
        self.faults = faults or FaultPlan()
        self.faults_by_action: dict[str, FaultPlan] = {}
        self.records: list[RequestRecord] = []
        self.messaging = FakeMessaging()  # POST /v2/messages; recorded as action "messages", no call_control_id
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._planned: dict[tuple[str | None, str], deque[Fault]] = defaultdict(deque)
        self._always: dict[tuple[str | None, str], Fault] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._faulted: dict[tuple[str, str], int] = {}
        self._random = random.Random(seed)
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        if tls is not None:  # each handshake then runs in the accepting thread: fine for tests, not for load
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}/v2"

    def start(self) -> FakeTelnyx:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telnyx", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # slow and trickling answers give up (with a reset) instead of holding the port
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelnyx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- scripted faults ---------------------------------------------------------------

    def plan(self, action: str, *faults: Fault, call: str | None = None) -> None:
        """Answer the next requests for `action` (only call `call`'s, when given) with `faults`, once each."""
        with self._lock:
            self._planned[(call, action)].extend(faults)

    def always(self, action: str, fault: Fault, *, call: str | None = None) -> None:
        """Answer every request for `action` (only call `call`'s, when given) with `fault`."""
        with self._lock:
            self._always[(call, action)] = fault

    def clear_faults(self) -> None:
        """Forget every planned and `always` fault; the random FaultPlan stays."""
        with self._lock:
            self._planned.clear()
            self._always.clear()

    # ----- queries for tests and reports -------------------------------------------------

    def requests_for(self, *call_control_ids: str, action: str | None = None) -> list[RequestRecord]:
        """Recorded requests for these legs (optionally one action), in arrival order."""
        with self._lock:
            return [r for r in self.records
                    if r.call_control_id in call_control_ids and (action is None or r.action == action)]

    @property
    def deduplicated(self) -> int:
        """How many requests repeated a command_id and were acknowledged without acting."""
        with self._lock:
            return sum(r.deduplicated for r in self.records)

    # ----- handling ----------------------------------------------------------------------

    def handle(self, path: str, headers: Any, raw_body: bytes, arrived_at: float | None = None) -> Reply:
        """Decide and record the answer at once; the handler then sends it (late, cut off, ...) as scripted."""
        received_at = time.monotonic()
        arrived_at = received_at if arrived_at is None else min(arrived_at, received_at)
        match = ACTION_PATH.match(path)
        if path == MESSAGES_PATH:
            call_control_id, action = "", MESSAGING_ACTION
        elif not match:
            return error(404, "10005", "Resource not found", f"No route for {path}.")
        else:
            call_control_id, action = unquote(match["call_control_id"]), match["action"]
        authorization = headers.get("Authorization", "")
        outcome = self._process(call_control_id, action, authorization, raw_body, headers.get("Idempotency-Key"))
        reply = outcome.reply
        code = reply.body["errors"][0]["code"] if "errors" in reply.body else None
        label = outcome.fault.label if outcome.fault else None
        record = RequestRecord(received_at, call_control_id, action, outcome.body, reply.status, code,
                               outcome.deduplicated, label, outcome.acted, authorization, arrived_at)
        with self._lock:
            self.records.append(record)
        reply.delay_s += self.faults_by_action.get(action, self.faults).latency_s
        return reply

    def _process(self, call_control_id: str, action: str, authorization: str, raw_body: bytes,
                 idempotency_key: str | None = None) -> _Outcome:
        """Auth, parsing, faults, validation, dedup, then the carrier (or, for a message, the messaging fake)."""
        if not _bearer_ok(authorization):
            return _Outcome(error(401, "10009", "Authentication failed", "Send a Bearer API key."))
        if action not in ACTIONS and action != MESSAGING_ACTION:
            return _Outcome(error(404, "10005", "Resource not found", f"Unknown action '{action}'."))
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            return _Outcome(error(400, "10015", "Bad Request", "The body is not valid JSON."))
        fault = self._fault_for(call_control_id, action, body)
        if fault and not fault.acts:
            return _Outcome(_fault_reply(fault), body, fault=fault)
        if action == MESSAGING_ACTION:
            reply, deduplicated = self._send_message(body, idempotency_key)
        else:
            reply, deduplicated = self._act(call_control_id, action, body)
        acted = reply.status == 200 and not deduplicated
        if fault and fault.kind == "ambiguous":
            reply = error(503, "10007", "Service unavailable")
        elif fault:
            reply.transport = fault
        return _Outcome(reply, body, deduplicated, fault, acted)

    def _act(self, call_control_id: str, action: str, body: Any) -> tuple[Reply, bool]:
        problem = validate(action, body)
        if problem:
            return error(422, problem.code, problem.title, problem.detail, problem.pointer), False
        command_id = body.get("command_id")
        key = (call_control_id, command_id) if isinstance(command_id, str) else None
        if key and not self._claim(key):
            return ok(), True
        code = self.carrier.handle_command(call_control_id, action, body) if self.carrier else None
        if key and code:
            with self._lock:
                del self._seen[key]  # a refused command did nothing, so its command_id may be used again
        if code:
            return error(422, code, ERROR_TITLES[code]), False
        return ok(), False

    def _send_message(self, body: Any, idempotency_key: str | None) -> tuple[Reply, bool]:
        problem = validate_message(body)
        if problem:
            return error(422, problem.code, problem.title, problem.detail, problem.pointer), False
        data, repeated = self.messaging.send(body, idempotency_key)
        return Reply(200, {"data": data}), repeated

    def _claim(self, key: tuple[str, str]) -> bool:
        """Atomically claim a command_id for this call; False when it was used in the last 60 s."""
        now = time.monotonic()
        with self._lock:
            if now - self._seen.get(key, -DEDUP_WINDOW_S) < DEDUP_WINDOW_S:
                return False
            self._seen[key] = now
            return True

    def _fault_for(self, call_control_id: str, action: str, body: Any) -> Fault | None:
        """The scripted fault for this request, else maybe a random one."""
        with self._lock:
            for key in ((call_control_id, action), (None, action)):
                if self._planned.get(key):
                    return self._planned[key].popleft()
            for key in ((call_control_id, action), (None, action)):
                if key in self._always:
                    return self._always[key]
        return self._random_fault(self.faults_by_action.get(action, self.faults), call_control_id, body)

    def _random_fault(self, plan: FaultPlan, call_control_id: str, body: Any) -> Fault | None:
        if not plan.error_rate or self._random.random() >= plan.error_rate:
            return None
        command_id = body.get("command_id") if isinstance(body, dict) else None
        key = (call_control_id, str(command_id))
        with self._lock:
            if self._faulted.get(key, 0) >= plan.max_faults_per_command:
                return None
            self._faulted[key] = self._faulted.get(key, 0) + 1
        roll = self._random.random()
        if roll < plan.ambiguous_share:
            return AMBIGUOUS
        if roll < plan.ambiguous_share + plan.rate_limit_share:
            retry_after = None if plan.retry_after_s is None else str(int(plan.retry_after_s))
            return http_error(429, "10011", retry_after)
        return http_error(self._random.choice([500, 503]))


def _fault_reply(fault: Fault) -> Reply:
    """The error envelope for a status fault; a redirect has none; a reset has no answer at all (status 0)."""
    if fault.kind == "reset":
        return Reply(0, {}, transport=fault)
    if fault.kind == "redirect":
        return Reply(fault.status, {}, headers={"Location": fault.location})
    title = "Service unavailable" if fault.status == 503 else ERROR_TITLES.get(fault.code, "Scripted failure")
    reply = error(fault.status, fault.code, title)
    if fault.retry_after is not None:
        reply.headers["Retry-After"] = fault.retry_after
    return reply


def _bearer_ok(value: str) -> bool:
    scheme, _, token = value.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


class _Server(ThreadingHTTPServer):
    # http.server listens with a backlog of 5: forty calls connecting at once then lose SYNs, and a client's
    # connect timeout fires against a fault nobody scripted. A real API accepts far more at once.
    request_queue_size = 128
    daemon_threads = True

    def server_bind(self) -> None:
        super().server_bind()
        arrival.enable(self.socket)  # requests' arrival by the kernel's clock (simulator/arrival.py)

    def handle_error(self, request, client_address) -> None:
        """A service that stops drops its kept-alive connections: normal here, not a traceback in the output."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(fake: FakeTelnyx) -> type[BaseHTTPRequestHandler]:
    class Handler(arrival.Stamped, BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API: the client's connection pool is exercised
        # http.server writes an answer's head and body apart; with Nagle's algorithm on, the body waits for the
        # client's delayed ACK of the head (up to 40 ms on Linux), a delay no real API adds.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            reply = fake.handle(self.path, self.headers, body, arrived_at=self.arrived_at())
            try:
                self._deliver(reply)
            except OSError:  # the client gave up (timed out) before a slow or trickling answer
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802
            self._send(error(404, "10005", "Resource not found"))

        def _deliver(self, reply: Reply) -> None:
            fault = reply.transport
            delay = reply.delay_s + (fault.seconds if fault and fault.kind == "slow" else 0.0)
            if (delay and fake.stopping.wait(delay)) or (fault and fault.kind == "reset"):
                return self._reset()
            if fault and fault.kind == "cut":
                self._send(reply, cut=True)
                return self._reset()
            if fault and fault.kind == "trickle":
                return self._trickle(self._status_and_headers(reply), fault.seconds)
            if fault and fault.kind == "header_trickle":
                return self._trickle(self._rendered(reply), fault.seconds)
            if fault and fault.kind in ("huge", "endless"):
                return self._stream(reply, fault.size if fault.kind == "huge" else None)
            return self._send(reply)

        def _send(self, reply: Reply, cut: bool = False) -> None:
            payload = self._status_and_headers(reply)
            self.wfile.write(payload[: len(payload) // 2] if cut else payload)
            self.wfile.flush()

        def _trickle(self, data: bytes, seconds_per_byte: float) -> None:
            """Send `data` one byte every `seconds_per_byte` (whatever has been sent before goes at once)."""
            self.wfile.flush()
            for i in range(len(data)):
                if fake.stopping.wait(seconds_per_byte):
                    return self._reset()
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()

        def _stream(self, reply: Reply, size: int | None) -> None:
            """The answer padded with leading spaces to `size` bytes, or (None) a chunked body that never ends.

            Written 64 KiB at a time from one block, so the fake's memory stays flat; a client that stops
            reading and closes ends it (the next write fails), as does stop()."""
            block = b" " * STREAM_BLOCK_BYTES
            if size is None:
                self._head(reply, {"Transfer-Encoding": "chunked"})
                chunk = b"%x\r\n%s\r\n" % (len(block), block)
                while not fake.stopping.is_set():
                    self.wfile.write(chunk)
                return self._reset()
            payload = json.dumps(reply.body).encode()
            self._head(reply, {"Content-Length": str(max(size, len(payload)))})
            padding = size - len(payload)
            while padding > 0:
                if fake.stopping.is_set():
                    return self._reset()
                self.wfile.write(block[:padding])
                padding -= len(block)
            self.wfile.write(payload)

        def _status_and_headers(self, reply: Reply) -> bytes:
            """Send the status line and headers; return the body still to send."""
            payload = json.dumps(reply.body).encode()
            self._head(reply, {"Content-Length": str(len(payload))})
            return payload

        def _head(self, reply: Reply, framing: dict[str, str]) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for name, value in {**framing, **reply.headers}.items():
                self.send_header(name, value)
            self.end_headers()

        def _rendered(self, reply: Reply) -> bytes:
            """The whole answer as bytes, status line and headers included, instead of sending it."""
            socket_file, self.wfile = self.wfile, io.BytesIO()
            try:
                body = self._status_and_headers(reply)
                return self.wfile.getvalue() + body
            finally:
                self.wfile = socket_file

        def _reset(self) -> None:
            """Close with an RST (SO_LINGER 0), not a polite FIN."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the runner prints its own transcript
            return

    return Handler


class LoopbackHTTP:
    """An HTTP server on a free loopback port, served from a daemon thread inside a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], thread_name: str) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread_name = thread_name

    def __enter__(self) -> Any:
        threading.Thread(target=self._server.serve_forever, name=self._thread_name, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class OtherHost(LoopbackHTTP):
    """Another HTTP server on loopback, for a scripted redirect to point at: it answers 200 with Call Control's
    success body to any method, as the host in the incident did, and records every request it gets, so a test
    can assert that nothing was ever sent there. `url` names it "localhost", not 127.0.0.1 like the fake, so a
    log line can tell the two hosts apart."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path, body), in arrival order
        super().__init__(_recording_handler(self.requests), "other-host")

    @property
    def url(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"


def _recording_handler(requests: list[tuple[str, str, bytes]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as the fake API's handler

        def _record(self) -> None:
            requests.append((self.command, self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            payload = json.dumps({"data": {"result": "ok"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _record  # noqa: N815 - the names http.server looks for

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
