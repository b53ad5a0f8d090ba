"""A thin Call Control client: one private action method, one-line verbs, bounded retries."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import requests

from config import CallsConfig, TelnyxConfig

log = logging.getLogger(__name__)

CALL_ENDED = "90018"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULTS = TelnyxConfig()  # the config's defaults, so a client built without settings behaves the same
COMMAND_NAMESPACE = uuid.UUID("6b0f7c1e-3c4a-4e0b-9d7e-1f2a3b4c5d6e")


class TelnyxError(Exception):
    """Base class for every Call Control failure."""


class TelnyxTimeout(TelnyxError):
    """No answer within the configured timeouts, after every retry."""


class TelnyxConnectionError(TelnyxError):
    """Telnyx could not be reached, after every retry."""


class TelnyxHTTPError(TelnyxError):
    """Telnyx answered with a non-2xx status."""

    def __init__(self, status: int, code: str | None, title: str):
        self.status, self.code, self.title = status, code, title
        super().__init__(f"HTTP {status} code={code} {title}")


def command_id_for(*parts: str) -> str:
    """A deterministic command_id, so a redelivered webhook or a retry never makes Telnyx act twice."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, "|".join(parts)))


class CallControl(Protocol):
    """The verbs the service uses; the production client and test fakes both satisfy it."""

    def answer(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def speak(self, call_control_id: str, payload: str, voice: str, *, command_id: str, **body: Any) -> bool: ...
    def transcription_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def transcription_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def playback_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def transfer(self, call_control_id: str, to: str, *, command_id: str, **body: Any) -> bool: ...
    def hangup(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...


class TelnyxClient:
    """Sends Call Control actions. Each verb returns True when Telnyx accepted it, False when the call had ended."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        connect_timeout: float = DEFAULTS.connect_timeout_s,
        read_timeout: float = DEFAULTS.read_timeout_s,
        max_attempts: int = DEFAULTS.max_attempts,
        max_backoff: float = DEFAULTS.max_backoff_s,
        pool_size: int = CallsConfig().workers,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        _read_environment_once(self.session, self.base_url)

    def answer(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "answer", body, command_id)

    def speak(self, call_control_id: str, payload: str, voice: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "speak", {"payload": payload, "voice": voice, **body}, command_id)

    def transcription_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transcription_start", body, command_id)

    def transcription_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transcription_stop", body, command_id)

    def playback_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "playback_stop", body, command_id)

    def transfer(self, call_control_id: str, to: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transfer", {"to": to, **body}, command_id)

    def hangup(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "hangup", body, command_id)

    def _action(self, call_control_id: str, action: str, body: dict[str, Any], command_id: str) -> bool:
        url = f"{self.base_url}/calls/{quote(call_control_id, safe=':')}/actions/{action}"
        body = {**body, "command_id": command_id}
        for attempt in range(1, self.max_attempts + 1):
            response, failure = self._post(url, body, action)
            if failure is None:
                return True
            if isinstance(failure, TelnyxHTTPError):
                if _call_ended(failure):
                    log.info("call=%s action=%s skipped: call already ended", call_control_id, action)
                    return False
                if failure.status not in RETRY_STATUSES:
                    raise failure
            if attempt < self.max_attempts:
                self._sleep(self._backoff(attempt, response))
        raise failure

    def _post(self, url: str, body: dict[str, Any], action: str) -> tuple[requests.Response | None, TelnyxError | None]:
        """One attempt; a failure is returned, not raised, so the retry loop can decide."""
        try:
            response = self.session.post(url, json=body, timeout=self.timeout)
        except requests.Timeout:
            return None, TelnyxTimeout(f"{action} timed out")
        except requests.ConnectionError:
            return None, TelnyxConnectionError(f"{action}: cannot reach Telnyx")
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # The connection broke after the headers: Telnyx may have acted, so retry under the same command_id.
            return None, TelnyxConnectionError(f"{action}: the answer from Telnyx was cut off")
        return response, (None if response.ok else _http_error(response))

    def _backoff(self, attempt: int, response: requests.Response | None) -> float:
        """Short exponential backoff with jitter; a Retry-After is honoured only up to the cap."""
        delay = min(self.max_backoff, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        retry_after = _retry_after(response) if response is not None else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay


def _read_environment_once(session: requests.Session, base_url: str) -> None:
    """Take proxy and CA-bundle settings from the environment now, not on every request.

    With `trust_env` on, requests scans the whole environment and stats netrc and CA files for each
    command: a few per cent of the worker's CPU in the benchmark's profile. HTTPS_PROXY, NO_PROXY
    and REQUESTS_CA_BUNDLE still apply; they are read when the service starts.
    """
    from_env = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(from_env["proxies"])
    session.verify = from_env["verify"]
    session.trust_env = False


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _http_error(response: requests.Response) -> TelnyxHTTPError:
    code, title = None, response.reason or ""
    try:
        first = response.json()["errors"][0]
        code, title = str(first.get("code")), str(first.get("title", title))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    return TelnyxHTTPError(response.status_code, code, title)


def _call_ended(error: TelnyxHTTPError) -> bool:
    return error.status == 422 and error.code == CALL_ENDED
