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
        fake.enqueue(Stream("Hello. How can I help?", Tool("end_call"), ttft_s=0.3, tokens_per_s=40))
        fake.hung_up                           # indexes of the requests whose client closed a stream early
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

Streaming (a request with `"stream": true`): a `Stream` sends its parts as server-sent events at a set
pace: `ttft_s` before the first token, then `tokens_per_s`. A text part is cut into tokens (a word, or up to
five characters of a longer one, with its leading space); a `Tool` part is one tool call, sent in two
chunks (name, then arguments); `Stall(seconds)` pauses; `Raw(text)` sends a line as it is (a malformed
chunk); `BREAK` closes the connection there. A streamed request whose behaviour is a JSON answer (a dict
such as `DEFAULT_REPLY`) gets its "reply" as text and its action as a tool call, at the fake's
`ttft_s`/`tokens_per_s` (and a paced fake answers a request that does not stream after the time it would
take to stream the same text: only its "reply" counts, the JSON around it is free). Usage (the output
token count) comes last when the request asks for it. While streaming, the fake watches its socket: a
client that closes the connection is recorded in `hung_up` (with the time, `hung_up_at`). `connections`
counts the connections clients opened.
`FakeOpenAI(tools=False)` answers 400 to any request carrying `tools`, like a server without function calling.
"""

from __future__ import annotations

import json
import logging
import random
import re
import select
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulator import arrival

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


@dataclass(frozen=True)
class Tool:
    """One tool call in a stream: the function's name and its arguments (sent as JSON text)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """A pause inside a stream."""

    seconds: float


@dataclass(frozen=True)
class Raw:
    """A line sent as it is inside a stream (`data: ...` is not added)."""

    text: str


@dataclass(frozen=True)
class Break:
    """Close the connection in the middle of a stream."""


@dataclass(frozen=True)
class Stream:
    """A streamed answer: text, Tool, Stall, Raw and BREAK parts in order, at a set pace (None: the fake's)."""

    parts: tuple[Any, ...]
    ttft_s: float | None = None
    tokens_per_s: float | None = None

    def __init__(self, *parts: Any, ttft_s: float | None = None, tokens_per_s: float | None = None):
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "ttft_s", ttft_s)
        object.__setattr__(self, "tokens_per_s", tokens_per_s)


HANG = Hang()
DISCONNECT = Disconnect()
BREAK = Break()
_TOKEN = re.compile(r"\s*\S{1,5}|\s+$")


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
    tools: bool = True
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    hung_up: dict[int, float] = field(default_factory=dict)
    connections: int = 0  # TCP connections accepted: a client that reuses its connection opens one
    # Arrival (the kernel's stamp, simulator/arrival.py), then when each text token (or the answer) was sent.
    timelines: dict[int, list[float]] = field(default_factory=dict)

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str], arrived_at: float) -> tuple[int, Any]:
        """The request's index and what to do with it."""
        with self.lock:
            index = self.record(body, headers, arrived_at)
            if self.queue:
                return index, self.queue.popleft()
        return index, self._default_behaviour()

    def record(self, body: dict[str, Any], headers: dict[str, str], arrived_at: float) -> int:
        with self.lock:
            index = len(self.requests)
            self.timelines[index] = [arrived_at]
            self.requests.append(body)
            self.headers.append(headers)
            self.lock.notify_all()
            return index

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


class _Handler(arrival.Stamped, BaseHTTPRequestHandler):
    server: _Server
    # Kept-alive connections, as the real API: a stream is sent chunked, so the client's pool reuses the
    # connection afterwards instead of opening one per request.
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle kept-alive connection is closed after this long (the client's pool reconnects)
    # Each token is its own small write: with Nagle's algorithm on, one could wait for the client's delayed ACK
    # of the one before (up to 40 ms on Linux), a delay no real model server adds.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.server.script.lock:
            self.server.script.connections += 1

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            return self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
        headers = {k.lower(): v for k, v in self.headers.items()}
        script, arrived_at = self.server.script, self.arrived_at()
        if body.get("tools") and not script.tools:  # refused before it takes a scripted behaviour
            script.record(body, headers, arrived_at)
            return self._send_status(Status(400, "tools are not supported by this model"))
        self._index, behaviour = script.next_behaviour(body, headers, arrived_at)
        with script.lock:
            self._timeline = script.timelines[self._index]
        try:
            if body.get("stream") is True and not isinstance(behaviour, int | Status | Hang | Disconnect):
                self._stream(behaviour, body)
            elif self._written(behaviour):
                self._behave(behaviour, str(body.get("model", "fake-model")))
                self._timeline.append(time.monotonic())
            else:
                self.close_connection = True  # the client left while the answer was being "written"
        except (BrokenPipeError, ConnectionResetError):
            log.debug("fake openai: client went away")
        finally:
            if script.stopping.is_set():  # a request that stop() cut short got no answer: close, do not wait
                self.close_connection = True

    def _written(self, behaviour: Any) -> bool:
        """A paced fake takes as long to write a whole answer as to stream its text; False if the client left."""
        script = self.server.script
        if not (script.ttft_s or script.tokens_per_s) or not isinstance(behaviour, dict | str):
            return True
        text = behaviour.get("reply") if isinstance(behaviour, dict) else behaviour
        tokens = len(_TOKEN.findall(text if isinstance(text, str) else _content(behaviour)))
        return not self._wait(script.ttft_s + (tokens / script.tokens_per_s if script.tokens_per_s else 0))

    # ------------------------------------------------------------ streaming

    def _stream(self, behaviour: Any, body: dict[str, Any]) -> None:
        script, index = self.server.script, self._index
        while isinstance(behaviour, Delay):
            if self._wait(behaviour.seconds):
                return self._note_hang_up(index)
            behaviour = script.default if behaviour.then is None else behaviour.then
        stream = behaviour if isinstance(behaviour, Stream) else as_stream(behaviour)
        ttft = script.ttft_s if stream.ttft_s is None else stream.ttft_s
        rate = script.tokens_per_s if stream.tokens_per_s is None else stream.tokens_per_s
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if self._wait(ttft):
            return self._note_hang_up(index)
        chunk = _Chunker(str(body.get("model", "fake-model")))
        output_tokens = 0
        for part in stream.parts:
            if isinstance(part, Break):
                self.close_connection = True
                return
            if isinstance(part, Stall):
                if self._wait(part.seconds):
                    return self._note_hang_up(index)
                continue
            lines = [part.text] if isinstance(part, Raw) else chunk.tool(part) if isinstance(part, Tool) else None
            pieces = lines if lines is not None else [chunk.content(token) for token in _TOKEN.findall(part)]
            for piece in pieces:
                output_tokens += 1
                if not self._send_event(piece):
                    return self._note_hang_up(index)
                if lines is None:
                    self._timeline.append(time.monotonic())
                if rate and self._wait(1 / rate):
                    return self._note_hang_up(index)
        final = [chunk.finish()]
        if (body.get("stream_options") or {}).get("include_usage"):
            final.append(chunk.usage(output_tokens))
        for piece in [*final, "[DONE]"]:
            if not self._send_event(piece):
                return self._note_hang_up(index)
        self._write_chunk(b"")  # the last chunk: the response is complete and the connection stays open

    def _send_event(self, data: str) -> bool:
        """One server-sent event; False when the client has gone."""
        try:
            self._write_chunk(f"data: {data}\n\n".encode() if not data.startswith("data:") else f"{data}\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            return False
        return not self._client_gone(0)

    def _write_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body (an empty one ends it), in one write."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _wait(self, seconds: float) -> bool:
        """Sleep, watching the socket; True when the client hung up or the fake stops."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self.server.script.stopping.is_set() or self._client_gone(min(left, 0.05)):
                return True

    def _client_gone(self, timeout_s: float) -> bool:
        readable, _, _ = select.select([self.connection], [], [], timeout_s)
        if not readable:
            return False
        try:
            return self.connection.recv(1, 0x40 | 0x2) == b""  # MSG_DONTWAIT | MSG_PEEK: EOF means gone
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _note_hang_up(self, index: int) -> None:
        with self.server.script.lock:
            self.server.script.hung_up.setdefault(index, time.monotonic())
            self.server.script.lock.notify_all()
        self.close_connection = True

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


def as_stream(behaviour: Any) -> Stream:
    """A JSON answer as a stream: its reply as text, its action as a tool call; anything else as text."""
    if isinstance(behaviour, dict) and isinstance(behaviour.get("reply"), str):
        tool = {
            "transfer": Tool("transfer", {"department": behaviour.get("department")}),
            "end": Tool("end_call"),
        }.get(behaviour.get("action"))
        return Stream(behaviour["reply"], *([tool] if tool else []))
    return Stream(_content(behaviour))


class _Chunker:
    """chat.completion.chunk objects shaped like the real API's, as JSON text."""

    def __init__(self, model: str):
        self.model, self.id, self.tools = model, f"chatcmpl-fake{random.getrandbits(48):012x}", 0
        self.first = True

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        if self.first:
            delta, self.first = {"role": "assistant", **delta}, False
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return json.dumps(self._envelope([choice]))

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model, "system_fingerprint": "fp_fake", "choices": choices}

    def content(self, token: str) -> str:
        return self._chunk({"content": token})

    def tool(self, tool: Tool) -> list[str]:
        index, self.tools = self.tools, self.tools + 1
        call_id = f"call_fake{random.getrandbits(32):08x}"
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": tool.name, "arguments": ""}}
        tail = {"index": index, "function": {"arguments": json.dumps(tool.arguments)}}
        return [self._chunk({"tool_calls": [head]}), self._chunk({"tool_calls": [tail]})]

    def finish(self) -> str:
        return self._chunk({}, "tool_calls" if self.tools else "stop")

    def usage(self, output_tokens: int) -> str:
        body = self._envelope([])
        body["usage"] = {"prompt_tokens": 50, "completion_tokens": output_tokens, "total_tokens": 50 + output_tokens}
        return json.dumps(body)


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

    def server_bind(self) -> None:
        super().server_bind()
        arrival.enable(self.socket)  # requests' arrival by the kernel's clock, for the first-audio bench

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal here; keep it out of the test output."""
        log.debug("fake openai: error while answering %s", client_address, exc_info=True)


class FakeOpenAI:
    """A fake OpenAI server on a free loopback port; see the module docstring for the script."""

    def __init__(
        self,
        default: Any = None,
        default_delay_s: float | tuple[float, float] | None = None,
        *,
        tools: bool = True,
        ttft_s: float = 0.0,
        tokens_per_s: float = 0.0,
    ):
        self._script = _Script(DEFAULT_REPLY if default is None else default, default_delay_s)
        self._script.tools, self._script.ttft_s, self._script.tokens_per_s = tools, ttft_s, tokens_per_s
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
    def hung_up(self) -> list[int]:
        """Indexes (into `requests`) of the streamed requests whose client closed the connection early."""
        with self._script.lock:
            return sorted(self._script.hung_up)

    @property
    def connections(self) -> int:
        """How many connections clients have opened to the fake (one, for a client that reuses its connection)."""
        with self._script.lock:
            return self._script.connections

    def hung_up_at(self, index: int) -> float | None:
        """When (time.monotonic) the client of request `index` was seen hanging up, if it did."""
        with self._script.lock:
            return self._script.hung_up.get(index)

    def timeline(self, index: int) -> list[float]:
        """When request `index` arrived, then when each text token of its stream (or its whole answer) was sent."""
        with self._script.lock:
            return list(self._script.timelines.get(index, []))

    def wait_for_hang_up(self, index: int, timeout_s: float = 5.0) -> float:
        """Block until the client of request `index` hung up; TimeoutError otherwise. Returns when it did."""
        with self._script.lock:
            if not self._script.lock.wait_for(lambda: index in self._script.hung_up, timeout_s):
                raise TimeoutError(f"the client of request {index} did not hang up")
            return self._script.hung_up[index]

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
            self._script.hung_up.clear()
            self._script.timelines.clear()
