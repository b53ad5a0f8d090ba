"""A fake Telnyx Call Control API on 127.0.0.1: real paths, real error envelopes, command_id dedup, faults.

Every request is recorded (time, call_control_id, action, body, status, error code, dedup, fault) so
tests and the runner can assert on exactly what "Telnyx" saw.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from simulator.carrier import Carrier
from simulator.validation import ACTIONS, validate

ACTION_PATH = re.compile(r"^/v2/calls/(?P<call_control_id>[^/]+)/actions/(?P<action>[^/?]+)$")
DEDUP_WINDOW_S = 60.0
ERROR_TITLES = {
    "90015": "Invalid Call Control ID",
    "90018": "Call has already ended",
    "90034": "Call not answered yet",
    "90054": "Transcription already in progress",
}


@dataclass
class FaultPlan:
    """Failures to inject. `error_rate` of requests get 500/503 (or 429 for `rate_limit_share` of them).

    `ambiguous_share` of those failures happen after the command was acted on (Telnyx did it but the
    answer was lost), which only command_id dedup makes safe. A command_id is failed at most
    `max_faults_per_command` times so a retrying client always gets through eventually.
    """

    error_rate: float = 0.0
    rate_limit_share: float = 0.25
    retry_after_s: float | None = None
    ambiguous_share: float = 0.0
    latency_s: float = 0.0
    max_faults_per_command: int = 1


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received and how it answered."""

    at: float  # when the request arrived (monotonic)
    call_control_id: str
    action: str
    body: Any
    status: int
    code: str | None = None
    deduplicated: bool = False
    fault: str | None = None
    acted: bool = False  # the carrier applied it (even when an "ambiguous" fault then lost the answer)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def ok() -> Reply:
    return Reply(200, {"data": {"result": "ok"}})


def error(status: int, code: str, title: str, detail: str = "", pointer: str | None = None) -> Reply:
    item: dict[str, Any] = {"code": code, "title": title, "detail": detail or title}
    if pointer is not None:
        item["source"] = {"pointer": pointer}
    return Reply(status, {"errors": [item]})


class FakeTelnyx:
    """The API half of the simulator. Start with `start()`, stop with `stop()`; `base_url` ends in /v2."""

    def __init__(self, carrier: Carrier, faults: FaultPlan | None = None, *, port: int = 0, seed: int | None = None):
        self.carrier = carrier
        self.faults = faults or FaultPlan()
        self.faults_by_action: dict[str, FaultPlan] = {}
        self.records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._faulted: dict[tuple[str, str], int] = {}
        self._random = random.Random(seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v2"

    def start(self) -> FakeTelnyx:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telnyx", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelnyx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def handle(self, path: str, headers: Any, raw_body: bytes) -> Reply:
        received_at = time.monotonic()
        match = ACTION_PATH.match(path)
        if not match:
            return error(404, "10005", "Resource not found", f"No route for {path}.")
        call_control_id, action = unquote(match["call_control_id"]), match["action"]
        reply, body, deduplicated, fault = self._process(call_control_id, action, headers, raw_body)
        code = reply.body["errors"][0]["code"] if "errors" in reply.body else None
        acted = not deduplicated and (code is None or fault == "ambiguous")
        record = RequestRecord(received_at, call_control_id, action, body, reply.status, code, deduplicated, fault,
                               acted)
        with self._lock:
            self.records.append(record)
        return reply

    def _process(self, call_control_id: str, action: str, headers: Any, raw_body: bytes):
        """Auth, faults, parsing, validation, dedup, then the carrier. Returns (reply, body, dedup, fault)."""
        if not _bearer_ok(headers.get("Authorization", "")):
            return error(401, "10009", "Authentication failed", "Send a Bearer API key."), None, False, None
        if action not in ACTIONS:
            return error(404, "10005", "Resource not found", f"Unknown action '{action}'."), None, False, None
        plan = self.faults_by_action.get(action, self.faults)
        if plan.latency_s:
            time.sleep(plan.latency_s)
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            return error(400, "10015", "Bad Request", "The body is not valid JSON."), None, False, None
        fault = self._pick_fault(plan, call_control_id, body)
        if fault and fault != "ambiguous":
            return self._fault_reply(fault, plan), body, False, fault
        reply, deduplicated = self._act(call_control_id, action, body)
        if fault == "ambiguous":
            return error(503, "10007", "Service unavailable"), body, deduplicated, fault
        return reply, body, deduplicated, None

    def _act(self, call_control_id: str, action: str, body: Any) -> tuple[Reply, bool]:
        problem = validate(action, body)
        if problem:
            return error(422, problem.code, problem.title, problem.detail, problem.pointer), False
        command_id = body.get("command_id")
        key = (call_control_id, command_id) if isinstance(command_id, str) else None
        if key and not self._claim(key):
            return ok(), True
        code = self.carrier.handle_command(call_control_id, action, body)
        if key and code:
            with self._lock:
                del self._seen[key]  # a refused command did nothing, so its command_id may be used again
        if code:
            return error(422, code, ERROR_TITLES[code]), False
        return ok(), False

    def _claim(self, key: tuple[str, str]) -> bool:
        """Atomically claim a command_id for this call; False when it was used in the last 60 s."""
        now = time.monotonic()
        with self._lock:
            if now - self._seen.get(key, -DEDUP_WINDOW_S) < DEDUP_WINDOW_S:
                return False
            self._seen[key] = now
            return True

    def _pick_fault(self, plan: FaultPlan, call_control_id: str, body: Any) -> str | None:
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
            return "ambiguous"
        if roll < plan.ambiguous_share + plan.rate_limit_share:
            return "429"
        return self._random.choice(["500", "503"])

    @staticmethod
    def _fault_reply(fault: str, plan: FaultPlan) -> Reply:
        if fault == "429":
            reply = error(429, "10011", "Too many requests")
            if plan.retry_after_s is not None:
                reply.headers["Retry-After"] = str(int(plan.retry_after_s))
            return reply
        return error(int(fault), "10007", "Unexpected error" if fault == "500" else "Service unavailable")


def _bearer_ok(value: str) -> bool:
    scheme, _, token = value.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _handler_for(fake: FakeTelnyx) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
            length = int(self.headers.get("Content-Length") or 0)
            reply = fake.handle(self.path, self.headers, self.rfile.read(length))
            self._send(reply)

        def do_GET(self) -> None:  # noqa: N802
            self._send(error(404, "10005", "Resource not found"))

        def _send(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the runner prints its own transcript
            return

    return Handler
