"""The LLM brain, streamed: the caller hears the model's text sentence by sentence while it is being written.

What the caller hears is the assistant's plain text content; decisions are tool calls (`TOOLS`): transfer to
a named department, end the call, take a message, or "not sure". A server that streams but refuses tools
(HTTP 400/404/422 to a request carrying them) is asked again without them; when that works, tools stay off
for this brain (logged once) and the dialog's own rules decide.

The stream is read on a thread of its own, which queues sentences and decisions as they complete, and
`StreamedReply.parts` waits on that queue with the deadlines: `ai.timeout_s` for the first sentence
(BrainError after it: the dialog's fallback), then `ai.stall_timeout_s` for each next sentence and
`MAX_REPLY_S` for the whole reply (Finished("stalled")). When `ai.holding_after_s` passes before the first
sentence (and before `ai.timeout_s`), `parts` gives one StillWriting, and goes on waiting.
`stop()` (a barge-in, from the webhook's request thread) ends `parts` at once and closes the connection, so
the model stops writing, and billing, that reply.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2  # the openai SDK's HTTP client (a dependency of the pinned SDK)
import openai

from brains import INTERRUPTED_MARK, BrainError, Decision, Finished, ReplyPart, Sentence, StillWriting, Turn
from brains.llm import RETRY_PAUSE_S, LLMBrain, build_messages, describe, retryable, system_prompt
from config import Settings
from sentences import SentenceSplitter

log = logging.getLogger(__name__)

MAX_REPLY_S = 30.0  # a whole reply, however steadily it trickles
MAX_TOKENS = 400  # a spoken reply is a few sentences; this bounds the cost of a model that rambles
COMPLETIONS_PATH = "/chat/completions"  # under the client's base URL, as the SDK's own create() posts
TOOLS_REFUSED = frozenset({400, 404, 422})  # what a server without function calling answers to `tools`
# Once a sentence has gone, the caller has a second or more of speech to listen to, and the rest of the reply is
# read in gulps instead of a token at a time: after each wait for the network the reader pauses this long, so
# the tokens written meanwhile come in one read. Waking once per token is what a stream costs: reading a
# 4-sentence reply at 40 tokens a second took 22 ms of CPU token by token, 12 ms with such a pause after every
# wait (the benchmark machine). A later sentence still goes out as soon as it is read, at most this much after
# it was written.
GATHER_PAUSE_S = 0.1
MAX_TRAILING_LINES = 8  # read after `data: [DONE]` for the body's end (normally none: only its last, empty chunk)
WAITED_S = 0.002  # a line that took longer than this to come was waited for, not already read and buffered

TOOL_GUIDE = f"""\
Speak to the caller in plain text. When you decide something, also call one of the tools:
- transfer: put the caller through to one of the departments above (say so first).
- end_call: the caller has what they need and is saying goodbye (say goodbye first).
- take_message: the caller wants to leave a message for someone.
- not_sure: you do not understand the request or cannot answer it.
Otherwise call no tool: the caller is listening for your answer.
A reply of yours ending in "{INTERRUPTED_MARK}" was cut off there by the caller: they heard nothing after it."""

DECISIONS = {"transfer": "transfer", "end_call": "end", "take_message": "take_message", "not_sure": "not_sure"}


def tools(settings: Settings) -> list[dict[str, Any]]:
    """The tool schema sent with every request; transfer only when there is somewhere to transfer to."""

    def tool(name: str, description: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
        parameters = {"type": "object", "properties": properties or {}, "required": list(properties or {})}
        return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}

    names = sorted(settings.destinations)
    transfer = tool(
        "transfer",
        "Put the caller through to a department.",
        {"department": {"type": "string", "enum": names, "description": "the department's name"}},
    )
    return [
        *([transfer] if names else []),
        tool("end_call", "End the call after your goodbye."),
        tool("take_message", "Take a message from the caller."),
        tool("not_sure", "You are not sure what the caller wants or cannot answer it."),
    ]


class StreamingLLMBrain(LLMBrain):
    """LLMBrain that can also stream (`stream`); `reply` keeps the one-shot JSON answer."""

    def __init__(self, settings: Settings, client: openai.OpenAI | None = None):
        super().__init__(settings, client)
        self._stall_s = settings.ai.stall_timeout_s
        self._holding_s = settings.ai.holding_after_s
        self._stream_prompt = system_prompt(settings, TOOL_GUIDE)
        self._tools = tools(settings)
        self._tools_refused = False

    def stream(self, history: Sequence[Turn], utterance: str) -> StreamedReply:
        """Start asking; the request goes out on the stream's own thread when `parts` is first iterated."""
        recent = list(history)[-self._max_history :] if self._max_history else []
        messages = build_messages(self._stream_prompt, recent, utterance)
        now = time.monotonic()
        holding = now + self._holding_s if 0 < self._holding_s < self._timeout_s else None
        return StreamedReply(self, messages, now + self._timeout_s, self._stall_s, holding)

    def open(self, messages: list[dict[str, str]], deadline: float) -> Any:
        """The streamed request, with one retry (a busy or broken server) and the tool fallback, by the deadline."""
        attempt = 1
        while True:
            use_tools = not self._tools_refused
            try:
                return self._open_once(messages, deadline, use_tools)
            except openai.APIStatusError as exc:
                refused = use_tools and exc.status_code in TOOLS_REFUSED
                stream = self._without_tools(messages, deadline) if refused else None
                if stream is not None:
                    return stream
                failure: openai.OpenAIError = exc
            except openai.OpenAIError as exc:
                failure = exc
            log.warning("llm stream attempt %d failed: %s", attempt, describe(failure))
            if attempt > self._max_retries or not retryable(failure) or deadline - time.monotonic() <= RETRY_PAUSE_S:
                raise BrainError(describe(failure)) from failure
            attempt += 1
            time.sleep(RETRY_PAUSE_S)

    def _without_tools(self, messages: list[dict[str, str]], deadline: float) -> Any:
        """Ask once without tools; when that is accepted, tools stay off for this brain (logged once)."""
        try:
            stream = self._open_once(messages, deadline, False)
        except openai.OpenAIError:
            return None
        if not self._tools_refused:
            self._tools_refused = True
            log.warning("llm: the model server refuses tools; replies are spoken, decisions left to the dialog")
        return stream

    def _open_once(self, messages: list[dict[str, str]], deadline: float, use_tools: bool) -> Any:
        """The streamed response, its status checked by the SDK; its body is read as raw lines (`sse_data`).

        Sent with the SDK's generic `post` rather than `chat.completions.create`: the body is plain JSON already,
        and `create` walks it against the SDK's parameter types first, 1.6 ms of CPU per request for the prompt
        and the tools (measured on the benchmark machine), spent before the model even hears the question.
        Authentication, headers, timeouts and the status errors (`APIStatusError`) are the SDK's either way.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrainError("model deadline passed before the request")
        client = self._client.with_options(timeout=max(remaining, self._stall_s), max_retries=0)
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": MAX_TOKENS,
        }
        if use_tools:
            body["tools"] = self._tools
        return client.post(COMPLETIONS_PATH, body=body, cast_to=httpx2.Response, stream=True)


_END = object()
_STOP = object()


@dataclass
class _ToolCall:
    name: str = ""
    arguments: str = ""


@dataclass
class _Reading:
    """What the chunks read so far make: sentences and decisions, the token count, whether the model finished."""

    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    calls: dict[int, _ToolCall] = field(default_factory=dict)
    tokens: int | None = None
    finished: bool = False
    given: int = 0  # tool calls already given as decisions
    spoken: bool = False  # a sentence has been given

    def parts_of(self, chunk: dict[str, Any]) -> list[ReplyPart]:
        text, tool_deltas, usage, done_writing = _read_chunk(chunk)
        self.tokens = usage if usage is not None else self.tokens
        self.finished = self.finished or done_writing
        for delta in tool_deltas:
            _merge(self.calls, delta)
        done = len(self.calls) - 1 if tool_deltas else len(self.calls) if text else self.given
        parts: list[ReplyPart] = list(_decisions(self.calls, self.given, done))  # complete once something follows
        self.given = max(self.given, done)
        sentences = [Sentence(sentence) for sentence in self.splitter.feed(text)]
        self.spoken = self.spoken or bool(sentences)
        return parts + sentences

    def last_parts(self) -> list[ReplyPart]:
        rest = self.splitter.flush()
        return [*([Sentence(rest)] if rest else []), *_decisions(self.calls, self.given, len(self.calls))]


@dataclass
class StreamedReply:
    """One reply being written. A reader thread reads the stream and queues its sentences and decisions as they
    complete; `parts`, on the call's worker, waits for them under the deadlines, waking once per part, not once
    per token (many threads waking per token cost real latency at a few hundred calls)."""

    brain: StreamingLLMBrain
    messages: list[dict[str, str]]
    first_deadline: float
    stall_s: float
    holding_at: float | None = None  # when to give StillWriting, should no sentence have come by then
    _queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stream: Any = None
    _reading: _Reading = field(default_factory=_Reading)

    def stop(self) -> None:
        self._stopped.set()
        self._queue.put(_STOP)
        self._close()

    def parts(self) -> Iterator[ReplyPart]:
        threading.Thread(target=self._read, name="llm-stream", daemon=True).start()
        reading, spoken, anything, holding_at = self._reading, False, False, self.holding_at
        end_by = min(self.first_deadline + MAX_REPLY_S, time.monotonic() + MAX_REPLY_S)
        try:
            while True:
                wait = self.first_deadline - time.monotonic() if not spoken else self.stall_s
                if holding_at is not None:  # only ever before the first sentence
                    wait = min(wait, holding_at - time.monotonic())
                item = self._next(min(wait, end_by - time.monotonic()))
                if item is None and holding_at is not None and time.monotonic() < self.first_deadline:
                    holding_at = None
                    yield StillWriting()
                    continue
                if item is _STOP:
                    yield Finished("stopped", reading.tokens, len(reading.splitter.pending))
                    return
                if item is None or isinstance(item, Exception):
                    if not spoken:
                        raise _failure(item)
                    ending = "stalled" if item is None else "broken"
                    log.warning("llm stream %s after the first sentence: %s", ending, item or "nothing in time")
                    yield Finished(ending, reading.tokens, len(reading.splitter.pending))
                    return
                if item is _END:
                    if not anything:
                        raise BrainError("model returned no content")
                    yield Finished("complete", reading.tokens)
                    return
                spoken, anything = spoken or isinstance(item, Sentence), True
                holding_at = None if spoken else holding_at
                yield item
        finally:
            self._stopped.set()
            self._close()

    def _next(self, timeout: float) -> Any:
        """The next queued item; None when nothing came in time."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _read(self) -> None:
        try:
            stream = self.brain.open(self.messages, self.first_deadline)
            with self._lock:
                self._stream = stream
            if self._stopped.is_set():
                return self._close()
            lines = gathered(stream.iter_lines(), self._reading, self._stopped)
            for chunk in sse_data(lines):
                if self._stopped.is_set():
                    return
                for part in self._reading.parts_of(chunk):
                    self._queue.put(part)
            for _ in itertools.islice(lines, MAX_TRAILING_LINES):  # to the body's end: the connection is reusable
                pass
            with self._lock:  # read to its end: closed gently, so that the connection may be reused
                self._stream = None
            stream.close()
            if not self._reading.finished:  # the connection closed before the model said it was done
                raise BrainError("model stream ended early")
            for part in self._reading.last_parts():
                self._queue.put(part)
            self._queue.put(_END)
        except BrainError as exc:
            self._queue.put(exc)
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a chunk that is not JSON
            self._queue.put(BrainError(describe(exc) if isinstance(exc, openai.OpenAIError) else "malformed chunk"))
        except Exception as exc:  # anything the socket or the SDK raises ends this reply, never the worker
            self._queue.put(BrainError(f"model stream failed ({type(exc).__name__})"))
        finally:
            if self._stopped.is_set():
                self._close()

    def _close(self) -> None:
        """Hang up a stream still being read (a stop, a stall, a reply abandoned); one read to its end is left be."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                hang_up(stream)
                stream.close()
            except Exception:  # closing a connection another thread is reading may raise there or here
                log.debug("llm stream: close raised", exc_info=True)


def hang_up(stream: Any) -> None:
    """Shut the socket down: on Linux, closing it alone does not wake the thread blocked reading it, nor
    tell the server, until the next byte arrives; shutdown does both at once."""
    network = getattr(stream, "extensions", {}).get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _failure(item: Any) -> BrainError:
    return item if isinstance(item, BrainError) else BrainError("model gave no answer before the deadline")


def gathered(lines: Iterator[str], reading: _Reading, stopped: threading.Event) -> Iterator[str]:
    """The stream's lines; once `reading` has given a sentence, a pause of GATHER_PAUSE_S after each line that
    had to be waited for (a stop ends the pause at once). A pause that ends late, by more than its own length,
    is the last: the worker is too busy to wake the reader in time, every wake of it costs a wait behind the
    others, and the tokens pile up between reads anyway."""
    pausing = True
    while True:
        asked = time.monotonic()
        line = next(lines, None)
        if line is None:
            return
        waited = time.monotonic() - asked > WAITED_S
        yield line  # read and queued by the caller before any pause
        if pausing and waited and reading.spoken:
            paused = time.monotonic()
            stopped.wait(GATHER_PAUSE_S)
            pausing = time.monotonic() - paused < 2 * GATHER_PAUSE_S


def sse_data(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON object of each server-sent event, until `data: [DONE]`; ValueError for one that is not an object.

    Read here rather than by the SDK's stream class, which builds a typed object per token: 25 times the CPU
    (about 250 against 10 microseconds a chunk), which at 50 calls streaming at 40 tokens a second is half a core.
    """
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            text, data = "\n".join(data), []
            if text == "[DONE]":
                return
            chunk = json.loads(text)
            if not isinstance(chunk, dict) or "error" in chunk:
                raise ValueError("not a chunk")
            yield chunk


def _read_chunk(chunk: dict[str, Any]) -> tuple[str, list[Any], int | None, bool]:
    """The text, tool call deltas, output token count and whether the model says it is done, in one chunk."""
    usage = _get(chunk, "usage", "completion_tokens")
    usage = usage if isinstance(usage, int) and not isinstance(usage, bool) else None
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices:
        return "", [], usage, False
    text, calls = _get(choices[0], "delta", "content"), _get(choices[0], "delta", "tool_calls")
    done = bool(_get(choices[0], "finish_reason"))
    return (text if isinstance(text, str) else ""), (calls if isinstance(calls, list) else []), usage, done


def _get(data: Any, *keys: str) -> Any:
    """data[k1][k2]..., or None where a level is missing or not an object."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _merge(calls: dict[int, _ToolCall], delta: Any) -> None:
    index = _get(delta, "index")
    index = index if isinstance(index, int) and not isinstance(index, bool) else len(calls)
    call = calls.setdefault(index, _ToolCall())
    name, arguments = _get(delta, "function", "name"), _get(delta, "function", "arguments")
    call.name += name if isinstance(name, str) else ""
    call.arguments += arguments if isinstance(arguments, str) else ""


def _decisions(calls: dict[int, _ToolCall], start: int, stop: int) -> Iterator[Decision]:
    """The decisions of tool calls `start` to `stop - 1` (in arrival order); unknown tools are logged and skipped."""
    for index in sorted(calls)[start:stop]:
        decision = decision_of(calls[index])
        if decision is not None:
            yield decision


def decision_of(call: _ToolCall) -> Decision | None:
    action = DECISIONS.get(call.name)
    if action is None:
        log.warning("llm called an unknown tool %r: ignored", call.name[:40])
        return None
    department = None
    if action == "transfer":
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = {}
        name = arguments.get("department") if isinstance(arguments, dict) else None
        department = name.strip() if isinstance(name, str) and name.strip() else None
    return Decision(action, department)
