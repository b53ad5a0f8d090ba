"""The LLM brain: asks an OpenAI-compatible chat model for a JSON answer, within a hard deadline.

The model sees the business facts and the *names* of the transfer departments, never their numbers;
the dialog maps a name to a number. The reply must be a JSON object with `reply`, `action`,
`department` and `confidence`; anything else is a BrainError and the dialog falls back to a human.
A department the config does not know is passed through as given: the dialog rejects it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2  # the openai SDK's HTTP client (a dependency of the pinned SDK)
import openai

from brains import BrainError, BrainReply, Turn
from config import ACTIONS, Settings
from hours import OpeningHours

log = logging.getLogger(__name__)

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) need no key, but the SDK wants one.
PLACEHOLDER_API_KEY = "not-needed"
RETRY_PAUSE_S = 0.2
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
RETRYABLE_STATUS = frozenset({408, 409, 429})
SNIPPET_CHARS = 40
NOT_A_COMPLETION = "model API answer is not a chat completion"
_MISSING = object()
ROLES = {"caller": "user", "assistant": "assistant"}

OUTPUT_FORMAT = """\
Answer with only a JSON object with these keys:
"reply": the words to say to the caller (string).
"action": "continue" to keep talking, "transfer" to put the caller through to a department, \
"end" when the caller has what they need and is saying goodbye.
"department": the department name when action is "transfer", otherwise null.
"confidence": a number from 0 to 1, how sure you are that the reply is correct and helpful."""


def make_client(settings: Settings) -> openai.OpenAI:
    """The production client; the base URL comes from the settings only, never from elsewhere."""
    secrets = settings.secrets
    return openai.OpenAI(
        api_key=secrets.openai_api_key or PLACEHOLDER_API_KEY,
        base_url=secrets.openai_base_url or DEFAULT_OPENAI_BASE_URL,
        timeout=settings.ai.timeout_s,
        max_retries=settings.ai.max_retries,
        http_client=http_client(),
    )


def http_client() -> openai.DefaultHttpxClient:
    """The SDK's own HTTP client with its defaults, on sockets that send each write at once (TCP_NODELAY).

    The SDK's transport writes a request's head and body apart, and does not turn Nagle's algorithm off:
    on a kept-alive connection the body then waits for the server's delayed ACK of the head, up to 40 ms
    on Linux, before the model even sees the question. (requests and redis-py turn it off themselves.)
    """
    transport = httpx2.HTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS, socket_options=NO_DELAY)
    return _ModelHttpClient(transport=transport)


class _ModelHttpClient(openai.DefaultHttpxClient):
    """Closes its kept-alive connections when it is dropped, as the client the SDK makes for itself does."""

    def __del__(self) -> None:
        if not self.is_closed:
            with contextlib.suppress(Exception):
                self.close()


def system_prompt(settings: Settings, output: str = OUTPUT_FORMAT) -> str:
    """Persona, business facts, transfer department names and the output format, from the config."""
    name = settings.business.name
    parts = [
        f"You are the phone receptionist for {name}. You are an automated assistant: say so if asked, "
        "and never claim to be a person.",
        "Your words are spoken aloud: answer in one or two short sentences of plain speech, "
        "with no markdown, lists, links or emoji. Only state facts given here; if you do not know, "
        "say so and offer to transfer the caller.",
        _language(settings),
        _facts(settings),
        _departments(settings),
        _guidance(settings),
        output,
    ]
    return "\n\n".join(part for part in parts if part)


def _facts(settings: Settings) -> str:
    labels = {"name": "Name", "hours": "Hours", "address": "Address", "description": "About"}
    business = settings.business
    lines = [f"- {label}: {getattr(business, key)}" for key, label in labels.items() if getattr(business, key)]
    return "Business facts:\n" + "\n".join(lines)


def _language(settings: Settings) -> str:
    # The text-to-speech voice is chosen for one language, so the reply must be in it.
    return f"Always reply in the language {settings.assistant.language}."


def _departments(settings: Settings) -> str:
    # Names only: the numbers stay in the config, so the model can never dial one it made up.
    names = sorted(settings.destinations)
    if not names:
        return 'No transfers are possible: never use action "transfer".'
    return "Departments you can transfer the caller to: " + ", ".join(names) + "."


def _guidance(settings: Settings) -> str:
    lines = []
    for intent in settings.intents:
        route = f" (transfer to {intent.department})" if intent.department else ""
        end = " (then end the call)" if intent.action == "end" else ""
        lines.append(f'- "{intent.examples[0]}": {intent.answer}{route}{end}')
    return "How the business answers common requests:\n" + "\n".join(lines) if lines else ""


def with_local_time(prompt: str, hours: OpeningHours | None, now: float) -> str:
    """The prompt plus the local date, time and whether the business is open, as of this turn."""
    if hours is None:
        return prompt
    closed = "" if hours.is_open(now) else " Nobody can be transferred to while it is closed: offer to take a message."
    return f"{prompt}\n\n{hours.describe(now)}{closed}"


def build_messages(prompt: str, history: Sequence[Turn], utterance: str) -> list[dict[str, str]]:
    """System prompt, the conversation so far as user/assistant messages, then the new utterance."""
    messages = [{"role": "system", "content": prompt}]
    messages += [{"role": ROLES[turn.role], "content": turn.text} for turn in history]
    messages.append({"role": "user", "content": utterance})
    return messages


def parse_reply(content: str | None) -> BrainReply:
    """Strictly turn the model's text into a BrainReply; BrainError names what was wrong."""
    if content is None:
        raise BrainError("model returned no content")
    try:
        data = json.loads(content)
    except ValueError:
        raise BrainError(f"model reply is not JSON: {snippet(content)!r}") from None
    if not isinstance(data, dict):
        raise BrainError(f"model reply is not a JSON object: {snippet(content)!r}")
    return BrainReply(_reply(data), _action(data), _confidence(data), _department(data))


def _reply(data: dict[str, Any]) -> str:
    reply = data.get("reply")
    if not isinstance(reply, str) or not reply.strip():
        raise BrainError("model reply: 'reply' missing or not a non-empty string")
    return reply.strip()


def _action(data: dict[str, Any]) -> Any:
    action = data.get("action")
    if action not in ACTIONS:
        raise BrainError(f"model reply: 'action' must be one of {', '.join(ACTIONS)}, got {snippet(action)!r}")
    return action


def _confidence(data: dict[str, Any]) -> float:
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not math.isfinite(confidence):
        raise BrainError("model reply: 'confidence' missing or not a number")
    return min(1.0, max(0.0, float(confidence)))


def _department(data: dict[str, Any]) -> str | None:
    department = data.get("department")
    if department is None or department == "":
        return None
    if not isinstance(department, str):
        raise BrainError("model reply: 'department' must be a name or null")
    return department.strip()


def snippet(value: Any) -> str:
    """The start of a value, enough to recognise it in a log line without dumping a payload."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."


def retryable(exc: openai.OpenAIError) -> bool:
    """Worth one more try: the network failed or the server said it was busy or broken."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)


def describe(exc: openai.OpenAIError) -> str:
    """A short reason for logs and BrainError, free of request content and keys."""
    if isinstance(exc, openai.APITimeoutError):
        return "model request timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"model API answered HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot connect to the model API"
    return f"model API error ({type(exc).__name__})"


def call_before(deadline: float, work: Callable[[], str | None]) -> str | None:
    """Run `work` in a daemon thread and stop waiting at the deadline, whatever the socket is doing.

    The SDK's timeout applies per read, so a server trickling bytes could hold a call for ever; here the
    caller gets BrainError at the deadline and the abandoned thread ends on its own request timeout.
    """
    outcome: queue.SimpleQueue = queue.SimpleQueue()

    def run() -> None:
        try:
            outcome.put((work(), None))
        except Exception as exc:  # handed to the waiting caller, which re-raises it
            outcome.put((None, exc))

    threading.Thread(target=run, name="llm-brain", daemon=True).start()
    try:
        result, error = outcome.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise BrainError("model gave no answer before the deadline") from None
    if error is not None:
        raise error
    return result


class LLMBrain:
    """Brain backed by a chat model; one attempt plus at most `ai.max_retries`, all within `ai.timeout_s`."""

    def __init__(
        self, settings: Settings, client: openai.OpenAI | None = None, clock: Callable[[], float] = time.time
    ):
        self._model = settings.ai.model
        self._timeout_s = settings.ai.timeout_s
        self._max_retries = min(1, settings.ai.max_retries)
        self._max_history = settings.ai.max_history_turns
        self._prompt = system_prompt(settings)
        self._hours, self._clock = settings.business.opening_hours(), clock
        self._client = client if client is not None else make_client(settings)
        # The SDK imports its chat resources on first use: about 45 ms that the first caller after a start
        # would wait on top of the model (measured on the benchmark machine). Taken now, before any call.
        self._client.chat.completions  # noqa: B018 - touched for its side effect

    def close(self) -> None:
        """Close the connections kept open to the model; the brain answers no more afterwards."""
        self._client.close()

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply:
        """Ask the model; BrainError when it fails, is late, or answers out of shape."""
        recent = list(history)[-self._max_history :] if self._max_history else []
        messages = build_messages(with_local_time(self._prompt, self._hours, self._clock()), recent, utterance)
        log.debug("llm request: model=%s messages=%d", self._model, len(messages))
        deadline = time.monotonic() + self._timeout_s
        content = call_before(deadline, lambda: self._complete(messages, deadline))
        return parse_reply(content)

    def _complete(self, messages: list[dict[str, str]], deadline: float) -> str | None:
        attempt = 1
        while True:
            try:
                return self._attempt(messages, deadline)
            except openai.OpenAIError as exc:
                log.warning("llm attempt %d failed: %s", attempt, describe(exc))
                if attempt > self._max_retries or not retryable(exc) or deadline - time.monotonic() <= RETRY_PAUSE_S:
                    raise BrainError(describe(exc)) from exc
            attempt += 1
            time.sleep(RETRY_PAUSE_S)

    def _attempt(self, messages: list[dict[str, str]], deadline: float) -> str | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrainError("model deadline passed before the request")
        client = self._client.with_options(timeout=remaining, max_retries=0)
        try:
            completion = client.chat.completions.create(
                model=self._model, messages=messages, response_format={"type": "json_object"}
            )
        except ValueError as exc:  # the SDK's json.loads on a 200 whose body is not JSON (a cut-off answer)
            raise BrainError(NOT_A_COMPLETION) from exc
        return completion_content(completion)


def completion_content(completion: Any) -> str | None:
    """The first choice's text; BrainError when the answer is not a chat completion at all.

    A proxy's error page or a half-compatible server can answer 200 with any body; the SDK then hands
    back text, a list, or a completion with parts missing, instead of raising.
    """
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        raise BrainError(NOT_A_COMPLETION)
    if not choices:
        raise BrainError("model returned no choices")
    content = getattr(getattr(choices[0], "message", None), "content", _MISSING)
    if content is not None and not isinstance(content, str):
        raise BrainError(NOT_A_COMPLETION)
    return content
