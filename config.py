"""Settings: behaviour from a YAML file, secrets from the environment, validated once at startup."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TELNYX_BASE_URL = "https://api.telnyx.com/v2"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ACTIONS = ("continue", "transfer", "end")


class ConfigError(Exception):
    """The configuration is unusable; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    answer: str
    action: str = "continue"
    department: str | None = None


@dataclass(frozen=True)
class Secrets:
    """Values read only from the environment; never logged."""

    telnyx_api_key: str = field(default="", repr=False)
    telnyx_public_key: str = field(default="", repr=False)
    telnyx_base_url: str = DEFAULT_TELNYX_BASE_URL
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads; `raw` keeps the validated YAML tree for sections' own use."""

    raw: Mapping[str, Any]
    secrets: Secrets
    intents: tuple[Intent, ...]

    def get(self, dotted: str) -> Any:
        node: Any = self.raw
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def destinations(self) -> dict[str, str]:
        return dict(self.raw["transfer"]["destinations"] or {})


# Every scalar key: dotted path -> (type, required, check). A check returns an error or None.
def _between(lo: float, hi: float):
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _nonempty(v: str):
    return None if v.strip() else "must not be empty"


def _voice(v: str):
    return None if v.count(".") >= 1 or v in ("male", "female") else "must look like Provider.Model.Voice"


def _level(v: str):
    return None if logging.getLevelName(v.upper()) in range(0, 60) else "must be a logging level"


SCHEMA: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "business.name": (str, _nonempty),
    "business.hours": (str, None),
    "business.address": (str, None),
    "business.description": (str, None),
    "assistant.greeting": (str, _nonempty),
    "assistant.voice": (str, _voice),
    "assistant.language": (str, None),
    "assistant.reprompt": (str, _nonempty),
    "assistant.silence_reprompt": (str, _nonempty),
    "assistant.goodbye": (str, _nonempty),
    "assistant.fallback": (str, _nonempty),
    "assistant.transfer_announcement": (str, _nonempty),
    "assistant.no_human_available": (str, _nonempty),
    "assistant.message_taken": (str, _nonempty),
    "dialog.min_asr_confidence": ((int, float), _between(0, 1)),
    "dialog.min_confidence": ((int, float), _between(0, 1)),
    "dialog.max_low_confidence_turns": (int, _between(1, 10)),
    "dialog.silence_timeout_s": ((int, float), _between(1, 120)),
    "dialog.max_turns": (int, _between(1, 200)),
    "transfer.default_destination": ((str, type(None)), None),
    "transfer.ring_timeout_s": (int, _between(5, 120)),
    "transcription.engine": (str, lambda v: None if v in ("Google", "Telnyx") else "must be Google or Telnyx"),
    "transcription.language": (str, None),
    "ai.enabled": (bool, None),
    "ai.canary_percent": ((int, float), _between(0, 100)),
    "ai.model": (str, _nonempty),
    "ai.timeout_s": ((int, float), _between(0.5, 60)),
    "ai.max_retries": (int, _between(0, 1)),
    "ai.max_history_turns": (int, _between(0, 100)),
    "webhook.verify_signatures": (bool, None),
    "webhook.timestamp_tolerance_s": (int, _between(1, 3600)),
    "webhook.max_body_bytes": (int, _between(1024, 10 * 1024 * 1024)),
    "telnyx.connect_timeout_s": ((int, float), _between(0.1, 30)),
    "telnyx.read_timeout_s": ((int, float), _between(0.1, 60)),
    "telnyx.max_attempts": (int, _between(1, 10)),
    "telnyx.max_backoff_s": ((int, float), _between(0, 10)),
    "calls.max_call_age_s": (int, _between(60, 86400)),
    "calls.workers": (int, _between(1, 1024)),
    "call_log.path": ((str, type(None)), None),
    "call_log.redact_transcripts": (bool, None),
    "logging.level": (str, _level),
}


def load_settings(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file and the environment; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    raw = _read_yaml(Path(path) if path else default_config_path(env))
    return build_settings(raw, env)


def default_config_path(env: Mapping[str, str]) -> Path:
    """`$RECEPTIONIST_CONFIG`, else config.yml, else the shipped example."""
    if env.get("RECEPTIONIST_CONFIG"):
        return Path(env["RECEPTIONIST_CONFIG"])
    here = Path(__file__).resolve().parent
    local = Path("config.yml")
    return local if local.exists() else here / "config.example.yml"


def build_settings(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate an already-parsed YAML tree plus the environment."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError(["the config file must be a mapping of sections"])
    for dotted, (kind, check) in SCHEMA.items():
        problems.extend(_check_key(raw, dotted, kind, check))
    problems.extend(_check_destinations(raw))
    intents, intent_problems = _parse_intents(raw.get("intents"), raw)
    problems.extend(intent_problems)
    secrets = _read_secrets(env)
    problems.extend(_check_secrets(secrets, raw))
    if problems:
        raise ConfigError(problems)
    return Settings(raw=raw, secrets=secrets, intents=intents)


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"config file {path} is not valid YAML: {exc}"]) from exc


def _lookup(raw: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_key(raw: Mapping[str, Any], dotted: str, kind, check) -> list[str]:
    found, value = _lookup(raw, dotted)
    if not found:
        return [f"{dotted}: missing"]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return [f"{dotted}: expected {_kind_name(kinds)}, got a boolean"]
    if not isinstance(value, kinds):
        return [f"{dotted}: expected {_kind_name(kinds)}, got {type(value).__name__}"]
    error = check(value) if check and value is not None else None
    return [f"{dotted}: {error}"] if error else []


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "a number", float: "a number", str: "text", bool: "true or false", type(None): "nothing"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _check_destinations(raw: Mapping[str, Any]) -> list[str]:
    found, destinations = _lookup(raw, "transfer.destinations")
    if not found or destinations is None:
        destinations = {}
    if not isinstance(destinations, Mapping):
        return ["transfer.destinations: expected a mapping of name to E.164 number"]
    problems = []
    for name, number in destinations.items():
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"transfer.destinations.{name}: name must be lower_snake_case")
        if not isinstance(number, str) or not (E164.match(number) or number.startswith("sip:")):
            problems.append(f"transfer.destinations.{name}: must be an E.164 number (+15555550100) or sip: URI")
    _, default = _lookup(raw, "transfer.default_destination")
    if default and default not in destinations:
        problems.append(f"transfer.default_destination: '{default}' is not one of transfer.destinations")
    return problems


def _parse_intents(items: Any, raw: Mapping[str, Any]) -> tuple[tuple[Intent, ...], list[str]]:
    if items is None:
        return (), []
    if not isinstance(items, list):
        return (), ["intents: expected a list"]
    _, destinations = _lookup(raw, "transfer.destinations")
    names = set(destinations or {}) if isinstance(destinations, Mapping) else set()
    intents, problems = [], []
    for i, item in enumerate(items):
        intent, errors = _parse_intent(item, names)
        problems.extend(f"intents[{i}]: {e}" for e in errors)
        if intent:
            intents.append(intent)
    return tuple(intents), problems


def _parse_intent(item: Any, destinations: set[str]) -> tuple[Intent | None, list[str]]:
    if not isinstance(item, Mapping):
        return None, ["expected a mapping with name, examples and answer"]
    errors = []
    examples = item.get("examples")
    if not isinstance(item.get("name"), str):
        errors.append("name: missing")
    if not isinstance(examples, list) or not examples or not all(isinstance(e, str) for e in examples):
        errors.append("examples: expected a non-empty list of phrases")
    if not isinstance(item.get("answer"), str) or not item["answer"].strip():
        errors.append("answer: missing")
    action = item.get("action", "continue")
    if action not in ACTIONS:
        errors.append(f"action: must be one of {', '.join(ACTIONS)}")
    department = item.get("department")
    if department is not None and department not in destinations:
        errors.append(f"department: '{department}' is not one of transfer.destinations")
    if errors:
        return None, errors
    return Intent(item["name"], tuple(examples), item["answer"], action, department), []


def _read_secrets(env: Mapping[str, str]) -> Secrets:
    return Secrets(
        telnyx_api_key=env.get("TELNYX_API_KEY", ""),
        telnyx_public_key=env.get("TELNYX_PUBLIC_KEY", "").strip(),
        telnyx_base_url=(env.get("TELNYX_BASE_URL") or DEFAULT_TELNYX_BASE_URL).rstrip("/"),
        openai_api_key=env.get("OPENAI_API_KEY", ""),
        openai_base_url=env.get("OPENAI_BASE_URL", ""),
    )


def _check_secrets(secrets: Secrets, raw: Mapping[str, Any]) -> list[str]:
    _, verify = _lookup(raw, "webhook.verify_signatures")
    if verify is False:
        return []
    if not secrets.telnyx_public_key:
        return [
            "TELNYX_PUBLIC_KEY: not set. Copy it from the Telnyx portal (Keys & Credentials > Public Key); "
            "for local development only, set webhook.verify_signatures: false"
        ]
    try:
        key = base64.b64decode(secrets.telnyx_public_key, validate=True)
    except (binascii.Error, ValueError):
        return ["TELNYX_PUBLIC_KEY: not valid base64"]
    if len(key) != 32:
        return [f"TELNYX_PUBLIC_KEY: an Ed25519 public key is 32 bytes, this one decodes to {len(key)}"]
    return []
