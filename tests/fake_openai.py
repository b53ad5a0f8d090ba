"""A scriptable fake of the OpenAI chat completions API, served for real on 127.0.0.1.

The real `openai` client talks to it over HTTP, so timeouts, retries and parsing are exercised for real.
It serves `POST /v1/chat/completions`; every other path answers 404.

Usage::

    with FakeOpenAI() as fake:
        fake.enqueue({"reply": "We open at 8.", "action": "continue", "department": None, "confidence": 0.9})
        fake.enqueue(500)                      # an HTTP error status (OpenAI-style error body)
        fake.enqueue("not json at all")        # raw text as message.content
        fake.enqueue(Delay(2.0, then={...}))   # answer after two seconds
        fake.enqueue(HANG)                     # never answer; released when the fake stops
        fake.enqueue(Trickle(interval_s=0.5))  # headers at once, then the body one byte at a time
        fake.enqueue(DISCONNECT)               # close the connection without a response
        client = openai.OpenAI(api_key="test", base_url=fake.base_url)
        ...
        fake.requests[0]["messages"]           # every request body received, in order (also `history`)
        fake.headers[0]["authorization"]       # their headers, lower-cased names
        fake.wait_for_requests(2)              # block until two requests arrived (for threaded callers)

Each request takes the next scripted behaviour; when the queue is empty it gets `default`
(a "continue" reply with confidence 0.9 unless given), optionally after a random `default_delay_s`
(a number, or a (low, high) range: a slow brain for benchmarks); `default` can be reassigned at any
time. `Status(429, retry_after_s=1)` adds a Retry-After header; `Delay` and `Trickle` take `then=`, the
reply to send (a dict or text; `Delay` also accepts any other behaviour). Requests are recorded before
the behaviour runs, so hung and failed attempts are counted too. `stop()` returns promptly even while
requests hang: handler threads are daemons and every wait ends when the fake stops. Each answer closes
its connection (HTTP/1.0), and the listen backlog is large enough for benchmark bursts.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_REPLY: dict[str, Any] = {
    "reply": "Sure, how else can I help?",
    "action": "continue",
    "department": None,
    "confidence": 0.9,
}


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error status and an OpenAI-style error body."""

    code: int
    message: str = "scripted failure"
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Delay:
    """Wait `seconds`, then behave as `then` (the default reply when None)."""

    seconds: float
    then: Any = None


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer; the connection is dropped when the fake stops."""


@dataclass(frozen=True)
class Trickle:
    """Send the headers at once, then the body one byte every `interval_s` seconds."""

    interval_s: float = 2.0
    then: Any = None


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without sending a response."""


HANG = Hang()
DISCONNECT = Disconnect()


@dataclass
class _Script:
    """The queue of behaviours and the record of requests, shared by handler threads."""

    default: Any
    default_delay_s: float | tuple[float, float] | None
    queue: deque = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    stopping: threading.Event = field(default_factory=threading.Event)

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.lock.notify_all()
            if self.queue:
                return self.queue.popleft()
        return self._default_behaviour()

    def _default_behaviour(self) -> Any:
        delay = self.default_delay_s
        if isinstance(delay, tuple):
            delay = random.uniform(*delay)
        return Delay(delay, self.default) if delay else self.default


def completion_body(content: str, model: str) -> dict[str, Any]:
    """A chat.completion object shaped like the real API's."""
    prompt_tokens, completion_tokens = 50, max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-fake{random.getrandbits(48):012x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_fake",
    }


def error_body(status: Status) -> dict[str, Any]:
    """An error object shaped like the real API's."""
    kind = "rate_limit_error" if status.code == 429 else "server_error" if status.code >= 500 else "invalid_request"
    return {"error": {"message": status.message, "type": kind, "param": None, "code": None}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            return self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
        headers = {k.lower(): v for k, v in self.headers.items()}
        behaviour = self.server.script.next_behaviour(body, headers)
        try:
            self._behave(behaviour, str(body.get("model", "fake-model")))
        except (BrokenPipeError, ConnectionResetError):
            log.debug("fake openai: client went away")

    def _behave(self, behaviour: Any, model: str) -> None:
        stopping = self.server.script.stopping
        if isinstance(behaviour, Delay):
            if not stopping.wait(behaviour.seconds):
                self._behave(self.server.script.default if behaviour.then is None else behaviour.then, model)
        elif isinstance(behaviour, Hang):
            stopping.wait()
        elif isinstance(behaviour, Disconnect):
            self.close_connection = True
        elif isinstance(behaviour, Trickle):
            self._trickle(behaviour, model)
        elif isinstance(behaviour, int | Status):
            status = behaviour if isinstance(behaviour, Status) else Status(behaviour)
            self._send_status(status)
        else:
            self._send_json(200, completion_body(_content(behaviour), model))

    def _trickle(self, trickle: Trickle, model: str) -> None:
        then = self.server.script.default if trickle.then is None else trickle.then
        data = json.dumps(completion_body(_content(then), model)).encode()
        self._send_headers(200, len(data))
        for i in range(len(data)):
            if self.server.script.stopping.wait(trickle.interval_s):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _send_status(self, status: Status) -> None:
        extra = {"Retry-After": str(status.retry_after_s)} if status.retry_after_s is not None else {}
        self._send_json(status.code, error_body(status), extra)

    def _send_json(self, code: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_headers(code, len(data), extra)
        self.wfile.write(data)

    def _send_headers(self, code: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.send_header("x-request-id", f"req_fake{random.getrandbits(32):08x}")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
        log.debug("fake openai: " + format, *args)


def _content(behaviour: Any) -> str:
    """A dict becomes JSON text in message.content; a string is sent as it is."""
    return behaviour if isinstance(behaviour, str) else json.dumps(behaviour)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections when a benchmark sends a burst
    block_on_close = False  # never wait for hung handlers on close

    def __init__(self, script: _Script):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal here; keep it out of the test output."""
        log.debug("fake openai: error while answering %s", client_address, exc_info=True)


class FakeOpenAI:
    """A fake OpenAI server on a free loopback port; see the module docstring for the script."""

    def __init__(self, default: Any = None, default_delay_s: float | tuple[float, float] | None = None):
        self._script = _Script(DEFAULT_REPLY if default is None else default, default_delay_s)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAI:
        """Bind a free port and serve in a daemon thread; ready when this returns."""
        self._script.stopping.clear()
        self._server = _Server(self._script)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hung and trickling requests, close the port."""
        if self._server is None:
            return
        self._script.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *behaviours: Any) -> None:
        """Script the next responses, in order: dict, str, int status, Status, Delay, HANG, Trickle, DISCONNECT."""
        with self._script.lock:
            self._script.queue.extend(behaviours)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, oldest first (a copy)."""
        with self._script.lock:
            return list(self._script.requests)

    history = requests

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least `count` requests arrived; TimeoutError if they do not within `timeout_s`."""
        with self._script.lock:
            if not self._script.lock.wait_for(lambda: len(self._script.requests) >= count, timeout_s):
                raise TimeoutError(f"fake openai got {len(self._script.requests)} requests, wanted {count}")
            return list(self._script.requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """The lower-cased headers of every request, parallel to `requests`."""
        with self._script.lock:
            return list(self._script.headers)

    @property
    def default(self) -> Any:
        return self._script.default

    @default.setter
    def default(self, behaviour: Any) -> None:
        self._script.default = behaviour

    @property
    def pending(self) -> int:
        """How many scripted behaviours are still queued."""
        with self._script.lock:
            return len(self._script.queue)

    def reset(self) -> None:
        """Forget queued behaviours and recorded requests."""
        with self._script.lock:
            self._script.queue.clear()
            self._script.requests.clear()
            self._script.headers.clear()
