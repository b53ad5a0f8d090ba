"""Settings: behaviour from a YAML file, secrets from the environment, validated once at startup.

One pydantic model per YAML section, read as typed attributes: `settings.dialog.min_confidence`. Defaults are
written once, in the models; the business's own words (`business.name`, the `assistant` lines) and `ai.model`
(the model you pay for) have none. config.example.yml spells out every key for forkers; its operational values
are these defaults, and tests/test_config.py fails when the two differ.

Validation is strict: unknown keys are refused with a "did you mean", `true` is not a number, and the voice and
languages are checked against values copied from Telnyx's OpenAPI spec, so a typo stops the service at startup
instead of a 422 in the middle of a call. Every problem goes into one ConfigError.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pydantic
import pydantic.dataclasses
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic_core import ErrorDetails, PydanticCustomError

import hours
from env_secrets import read_secret, webhook_secret_bytes

DEFAULT_TELNYX_BASE_URL = "https://api.telnyx.com/v2"
NUMBER = re.compile(r"\+[1-9]\d{6,14}|sip:\S+")  # E.164, or a SIP URI
E164 = re.compile(r"\+[1-9]\d{6,14}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,63}:")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
MAX_PUBLIC_KEYS = 2  # the old and the new key, while Telnyx's is being rotated
Action = Literal["continue", "transfer", "end"]
ACTIONS: tuple[str, ...] = get_args(Action)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Copied from Telnyx's Call Control OpenAPI spec (call-control.json); read it again when Telnyx adds values.
# SpeakRequest.language: the languages `speak` accepts (a bare `en` gets a 422 during the call).
SPEAK_LANGUAGES = _words(
    "arb cmn-CN cy-GB da-DK de-DE en-AU en-GB en-GB-WLS en-IN en-US es-ES es-MX es-US fr-CA fr-FR hi-IN is-IS"
    " it-IT ja-JP ko-KR nb-NO nl-NL pl-PL pt-BR pt-PT ro-RO ru-RU sv-SE tr-TR"
)
# SpeakRequest.voice description, "Supported Providers": a voice is `<Provider>.<Model>.<VoiceId>`.
VOICE_PROVIDERS = _words("AWS Azure ElevenLabs FishAudio Inworld Minimax Resemble Rime Telnyx xAI")
# GoogleTranscriptionLanguage (TranscriptionEngineGoogleConfig.language).
GOOGLE_LANGUAGES = _words(
    "af am ar az bg bn bs ca cs da de el en es et eu fa fi fil fr gl gu hi hr hu hy id is it iw ja jv ka kk km"
    " kn ko lo lt lv mk ml mn mr ms my ne nl no pa pl pt ro ru rw si sk sl sq sr ss st su sv sw ta te th tn tr"
    " ts uk ur uz ve vi xh yue zh zu"
)
# TelnyxTranscriptionLanguage (TranscriptionEngineTelnyxConfig.language).
TELNYX_LANGUAGES = _words(
    "af am ar as auto_detect az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi"
    " hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl"
    " ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh"
)
TRANSCRIPTION_LANGUAGES = {"Google": GOOGLE_LANGUAGES, "Telnyx": TELNYX_LANGUAGES}


class ConfigError(Exception):
    """The configuration is unusable; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


# ---------------------------------------------------------------- value checks


def _one_of(allowed: frozenset[str], what: str) -> Callable[[str], str]:
    """A check that a value is in `allowed`, refusing it as "'x' is not <what>; did you mean ...?"."""

    def check(value: str) -> str:
        if value not in allowed:
            context = {"value": value, "what": what, "hint": _hint(value, allowed)}
            raise PydanticCustomError("not_allowed", "'{value}' is not {what}{hint}", context)
        return value

    return check


def _hint(word: str, choices: Iterable[str]) -> str:
    """A "did you mean" from close spellings or shared prefixes; a short list of choices is given whole."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=3)
    close = close or [c for c in choices if len(word) >= 2 and (c.startswith(word) or word.startswith(c))][:5]
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; expected one of {', '.join(choices)}" if len(choices) <= 12 else ""


def _must(ok: Callable[[Any], object], message: str, *, before: bool = False) -> Any:
    """A validator refusing the values `ok` finds wrong, saying `message`; `before` runs ahead of the type check."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise PydanticCustomError("invalid", message)
        return value

    return BeforeValidator(check) if before else AfterValidator(check)


def _between(lo: float, hi: float) -> Any:
    return _must(lambda value: lo <= value <= hi, f"must be between {lo} and {hi}")


def _voice(voice: str) -> str:
    if voice in ("male", "female"):
        raise PydanticCustomError("voice", "'{voice}' is only for service_level basic, which this service does not "
                                  "use; name a voice as Provider.Model.VoiceId, e.g. Telnyx.KokoroTTS.af",
                                  {"voice": voice})
    parts = voice.split(".")
    if len(parts) < 2 or "" in parts or any(c.isspace() for c in voice):
        raise PydanticCustomError("voice", "must look like Provider.Model.VoiceId, e.g. Telnyx.KokoroTTS.af")
    _one_of(VOICE_PROVIDERS, "a Telnyx speak voice provider")(parts[0])
    return voice


def _from_value_error(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A check that runs `parse` and turns its ValueError into a config problem with the same words."""

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise PydanticCustomError("invalid", str(exc)) from None
        return value

    return check


def _text_matching(pattern: re.Pattern[str]) -> Callable[[Any], object]:
    return lambda value: isinstance(value, str) and pattern.fullmatch(value)


def _known_destination(name: str | None, info: pydantic.ValidationInfo) -> str | None:
    """Destinations come in the validation context: intents name them from outside the transfer section."""
    destinations = (info.context or {}).get("destinations")
    if name and destinations is not None and name not in destinations:
        raise PydanticCustomError("destination", "'{name}' is not one of transfer.destinations", {"name": name})
    return name


Line = Annotated[StrictStr, _must(str.strip, "must not be empty")]
KeyPrefix = Annotated[
    StrictStr, _must(_text_matching(KEY_PREFIX), "must be up to 64 of A-Z a-z 0-9 _ - . : and end in ':'")
]
Voice = Annotated[StrictStr, AfterValidator(_voice)]
SpeakLanguage = Annotated[StrictStr, AfterValidator(_one_of(SPEAK_LANGUAGES, "a language Telnyx speak accepts"))]
LogLevel = Annotated[StrictStr, _must(lambda level: logging.getLevelName(level.upper()) in range(60),
                                      "must be a logging level (DEBUG, INFO, WARNING, ERROR)")]
DestinationName = Annotated[str, _must(_text_matching(NAME), "name must be lower_snake_case", before=True)]
DestinationNumber = Annotated[str, _must(_text_matching(NUMBER), "must be an E.164 number (+15555550100) or sip: URI",
                                         before=True)]
Destinations = Annotated[dict[DestinationName, DestinationNumber], BeforeValidator(lambda d: {} if d is None else d)]
Destination = Annotated[StrictStr | None, AfterValidator(_known_destination)]
TimeZone = Annotated[StrictStr, AfterValidator(_from_value_error(hours.zone))]
TimeRange = Annotated[StrictStr, AfterValidator(_from_value_error(hours.parse_span))]
Weekday = Literal[hours.WEEKDAYS]  # type: ignore[valid-type]
OpenDay = Annotated[tuple[TimeRange, ...], BeforeValidator(lambda day: () if day is None else day)]  # null: closed


# ---------------------------------------------------------------- the YAML sections


class Section(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class BusinessConfig(Section):
    name: Line
    hours: StrictStr = ""  # the spoken summary; `timezone`, `open` and `closed_on` are what the dialog decides by
    timezone: TimeZone | None = None
    open: Annotated[dict[Weekday, OpenDay], BeforeValidator(lambda d: {} if d is None else d)] = {}
    closed_on: tuple[date, ...] = ()
    address: StrictStr = ""
    description: StrictStr = ""

    @pydantic.model_validator(mode="after")
    def _schedule_needs_a_zone(self) -> BusinessConfig:
        if (self.open or self.closed_on) and self.timezone is None:
            raise PydanticCustomError("zone", "business.open and business.closed_on need business.timezone")
        return self

    def opening_hours(self) -> hours.OpeningHours | None:
        """The schedule the dialog decides by; None (always open) without a time zone."""
        if self.timezone is None:
            return None
        return hours.OpeningHours.build(self.timezone, self.open, self.closed_on)


class AssistantConfig(Section):
    greeting: Line
    voice: Voice = "Telnyx.KokoroTTS.af"
    language: SpeakLanguage = "en-US"
    reprompt: Line
    silence_reprompt: Line
    goodbye: Line
    fallback: Line
    transfer_announcement: Line
    no_human_available: Line
    message_taken: Line
    holding: Line = "One moment."  # with ai.stream: said when the reply's first sentence is slow to come
    after_hours_greeting: Line | None = None  # empty: the greeting, after hours too


class DialogConfig(Section):
    min_asr_confidence: Annotated[StrictFloat, _between(0, 1)] = 0.5
    min_confidence: Annotated[StrictFloat, _between(0, 1)] = 0.55
    max_low_confidence_turns: Annotated[StrictInt, _between(1, 10)] = 2
    silence_timeout_s: Annotated[StrictFloat, _between(1, 120)] = 10.0
    max_turns: Annotated[StrictInt, _between(1, 200)] = 20


class TransferConfig(Section):
    destinations: Destinations = {}
    default_destination: Destination = None  # empty: take a message instead
    after_hours_destination: Destination = None  # empty: after hours, take a message instead
    ring_timeout_s: Annotated[StrictInt, _between(5, 120)] = 30
    machine_detection: StrictBool = False  # answering machine detection on the transfer leg (costs per call)


class TranscriptionConfig(Section):
    engine: Literal["Google", "Telnyx"] = "Google"
    language: StrictStr = "en"

    @pydantic.field_validator("language")
    @classmethod
    def _engine_knows_it(cls, language: str, info: pydantic.ValidationInfo) -> str:
        engine = info.data.get("engine")
        if engine not in TRANSCRIPTION_LANGUAGES:
            return language  # the engine itself was refused
        return _one_of(TRANSCRIPTION_LANGUAGES[engine], f"a language the {engine} engine recognises")(language)


class AiConfig(Section):
    enabled: StrictBool = True
    canary_percent: Annotated[StrictFloat, _between(0, 100)] = 100.0
    model: Line
    timeout_s: Annotated[StrictFloat, _between(0.5, 60)] = 8.0
    stream: StrictBool = False
    stall_timeout_s: Annotated[StrictFloat, _between(0.2, 30)] = 3.0
    holding_after_s: Annotated[StrictFloat, _between(0, 60)] = 1.5  # 0: never say assistant.holding
    max_retries: Annotated[StrictInt, _between(0, 1)] = 1
    max_history_turns: Annotated[StrictInt, _between(0, 100)] = 12


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid"))
class Intent:
    """One offline-brain intent; `department` must name one of transfer.destinations."""

    name: StrictStr
    examples: Annotated[tuple[StrictStr, ...], _must(len, "must not be empty")]
    answer: Line
    action: Action = "continue"
    department: Destination = None


class WebhookConfig(Section):
    verify_signatures: StrictBool = True
    timestamp_tolerance_s: Annotated[StrictInt, _between(1, 3600)] = 300
    max_body_bytes: Annotated[StrictInt, _between(1024, 10 * 1024 * 1024)] = 65536


class TelnyxConfig(Section):
    connect_timeout_s: Annotated[StrictFloat, _between(0.1, 30)] = 2.0
    read_timeout_s: Annotated[StrictFloat, _between(0.1, 60)] = 3.0
    max_attempts: Annotated[StrictInt, _between(1, 10)] = 3
    max_backoff_s: Annotated[StrictFloat, _between(0, 10)] = 1.0


class CallsConfig(Section):
    max_call_age_s: Annotated[StrictInt, _between(60, 86400)] = 7200
    workers: Annotated[StrictInt, _between(1, 1024)] = 256


class RedisConfig(Section):
    """Read only when REDIS_URL is set (stores/redis.py)."""

    key_prefix: KeyPrefix = "receptionist:"
    lease_s: Annotated[StrictFloat, _between(1, 60)] = 3.0
    timeout_s: Annotated[StrictFloat, _between(0.05, 10)] = 1.0


class MessagesConfig(Section):
    """Where a message a caller leaves is delivered (outbox.py); neither: only the call log has it."""

    sms_to: tuple[Annotated[str, _must(_text_matching(E164), "must be an E.164 number (+15555550100)",
                                       before=True)], ...] = ()
    webhook_url: Annotated[StrictStr | None, _must(lambda url: url is None or url.startswith(("https://", "http://")),
                                                   "must be an http:// or https:// URL")] = None
    max_attempts: Annotated[StrictInt, _between(1, 50)] = 8
    first_retry_s: Annotated[StrictFloat, _between(0.01, 600)] = 5.0


class RecordingConfig(Section):
    """Call recording with the caller's consent: off unless enabled (README, "Recording calls")."""

    enabled: StrictBool = False
    notice: Line = "This call may be recorded. If you'd rather it wasn't, just say so at any time."
    stopped: Line = "Of course. This call is no longer being recorded."


class CallLogConfig(Section):
    path: StrictStr | None = "call_log.jsonl"  # empty: no call log
    redact_transcripts: StrictBool = True


class LoggingConfig(Section):
    level: LogLevel = "INFO"


class AdminConfig(Section):
    """The operator's state: the AI switch, the rollback guard's window, messages marked called back."""

    state_path: StrictStr | None = "ops_state.json"  # memory store only (Redis keeps it); empty: not kept


class RollbackConfig(Section):
    """When the rollback guard switches the AI off (ai_switch.py)."""

    window_calls: Annotated[StrictInt, _between(3, 1000)] = 20
    max_brain_failure_share: Annotated[StrictFloat, _between(0, 1)] = 0.3
    max_escalation_share: Annotated[StrictFloat, _between(0, 1)] = 0.9


@dataclass(frozen=True)
class Secrets:
    """Values read only from the environment; never logged."""

    telnyx_api_key: str = field(default="", repr=False)
    telnyx_public_key: str = field(default="", repr=False)
    telnyx_base_url: str = DEFAULT_TELNYX_BASE_URL
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    redis_url: str = field(default="", repr=False)  # may carry a password
    messages_webhook_secret: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)  # turns on /admin
    metrics_token: str = field(default="", repr=False)  # when set, /metrics wants it

    @property
    def telnyx_public_keys(self) -> tuple[str, ...]:
        """The webhook signing keys: one, or two while a key is being rotated (comma-separated)."""
        return tuple(key.strip() for key in self.telnyx_public_key.split(",")) if self.telnyx_public_key else ()

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)


class Settings(Section):
    """Every setting the service reads: one attribute per YAML section, plus `secrets` from the environment."""

    business: BusinessConfig
    assistant: AssistantConfig
    dialog: DialogConfig = DialogConfig()
    transfer: TransferConfig = TransferConfig()
    transcription: TranscriptionConfig = TranscriptionConfig()
    ai: AiConfig
    intents: tuple[Intent, ...] = ()
    webhook: WebhookConfig = WebhookConfig()
    telnyx: TelnyxConfig = TelnyxConfig()
    calls: CallsConfig = CallsConfig()
    redis: RedisConfig = RedisConfig()
    messages: MessagesConfig = MessagesConfig()
    recording: RecordingConfig = RecordingConfig()
    call_log: CallLogConfig = CallLogConfig()
    logging: LoggingConfig = LoggingConfig()
    admin: AdminConfig = AdminConfig()
    rollback: RollbackConfig = RollbackConfig()
    _secrets: Secrets = Secrets()

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        """A section whose keys are all commented out is YAML null: treat it as empty."""
        if value is None:
            return () if info.field_name == "intents" else {}
        return value

    @property
    def secrets(self) -> Secrets:
        return self._secrets

    @property
    def destinations(self) -> dict[str, str]:
        return dict(self.transfer.destinations)


# ---------------------------------------------------------------- loading


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
    if not isinstance(raw, Mapping):
        raise ConfigError(["the config file must be a mapping of sections"])
    problems: list[str] = []
    secrets = _read_secrets(env, problems)
    problems += _check_secrets(secrets, verify=_section(raw, "webhook").get("verify_signatures"))
    problems += _check_redis_url(secrets.redis_url)
    problems += _check_webhook_secret(secrets.messages_webhook_secret, _section(raw, "messages").get("webhook_url"))
    problems += _check_tokens(secrets)
    context = {"destinations": _section(_section(raw, "transfer"), "destinations")}
    try:
        settings = Settings.model_validate(dict(raw), context=context)
    except pydantic.ValidationError as exc:
        raise ConfigError([*map(_problem, exc.errors()), *problems]) from None
    if problems:
        raise ConfigError(problems)
    settings._secrets = secrets
    return settings


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"config file {path} is not valid YAML: {exc}"]) from exc


def _section(raw: Any, key: str) -> Mapping[str, Any]:
    """raw[key] when it is a mapping, else empty: for the checks that look across sections."""
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------- pydantic errors as "dotted.path: message"

EXPECTED = {"string_type": "text", "int_type": "a number", "float_type": "a number", "bool_type": "true or false",
            "dict_type": "a mapping", "model_type": "a mapping", "dataclass_type": "a mapping", "tuple_type": "a list"}
KINDS = {bool: "a boolean", type(None): "nothing", str: "text", int: "a number", float: "a number", list: "a list",
         dict: "a mapping"}
UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def _problem(error: ErrorDetails) -> str:
    """One readable line for one pydantic error."""
    where, kind, value = _dotted(error["loc"]), error["type"], error["input"]
    if kind == "missing":
        return f"{where}: missing"
    if kind in UNKNOWN_KEY:
        return f"{where}: unknown key{_hint(str(error['loc'][-1]), _known_keys(error['loc'][:-1]))}"
    if kind == "int_type" and type(value) is float:
        return f"{where}: must be a whole number"
    if kind in EXPECTED:
        return f"{where}: expected {EXPECTED[kind]}, got {_kind_of(value)}"
    if kind == "literal_error":
        return f"{where}: must be one of {error.get('ctx', {}).get('expected')}"
    if kind == "too_short":
        return f"{where}: must not be empty"
    return f"{where}: {error['msg']}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    """("intents", 0, "action") -> "intents[0]: action"; ("dialog", "max_turns") -> "dialog.max_turns"."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += (": " if text.endswith("]") else ".") + part if text else part
    return text


def _kind_of(value: Any) -> str:
    return KINDS.get(type(value), type(value).__name__)


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys accepted at `loc` (list indexes skipped), for the "did you mean" hint."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, str):
            annotation = model.__pydantic_fields__[part].annotation
            model = (get_args(annotation) or [annotation])[0]  # tuple[Intent, ...] holds Intent
    return list(model.__pydantic_fields__)


# ---------------------------------------------------------------- secrets


def _read_secrets(env: Mapping[str, str], problems: list[str]) -> Secrets:
    """The secrets, each from its variable or the file its `_FILE` variable names (env_secrets.py)."""
    return Secrets(
        telnyx_api_key=read_secret(env, "TELNYX_API_KEY", problems),
        telnyx_public_key=read_secret(env, "TELNYX_PUBLIC_KEY", problems).strip(),
        telnyx_base_url=(env.get("TELNYX_BASE_URL") or DEFAULT_TELNYX_BASE_URL).rstrip("/"),
        openai_api_key=read_secret(env, "OPENAI_API_KEY", problems),
        openai_base_url=env.get("OPENAI_BASE_URL", ""),
        redis_url=env.get("REDIS_URL", "").strip(),
        messages_webhook_secret=read_secret(env, "MESSAGES_WEBHOOK_SECRET", problems),
        admin_token=env.get("ADMIN_TOKEN", "").strip(),
        metrics_token=env.get("METRICS_TOKEN", "").strip(),
    )


def _check_redis_url(url: str) -> list[str]:
    if url and not url.startswith(REDIS_SCHEMES):
        return [f"REDIS_URL: must start with {', '.join(REDIS_SCHEMES)} (the address itself is not shown: it may "
                "hold a password)"]
    return []


def _check_webhook_secret(secret: str, webhook_url: Any) -> list[str]:
    if not webhook_url:
        return []
    if not secret:
        return ["MESSAGES_WEBHOOK_SECRET: not set; messages.webhook_url needs it to sign what it sends"]
    try:
        webhook_secret_bytes(secret)
    except ValueError as exc:
        return [f"MESSAGES_WEBHOOK_SECRET: {exc}"]
    return []
MIN_TOKEN_CHARS = 16


def _check_tokens(secrets: Secrets) -> list[str]:
    """ADMIN_TOKEN and METRICS_TOKEN are passwords: one short enough to guess is refused."""
    named = {"ADMIN_TOKEN": secrets.admin_token, "METRICS_TOKEN": secrets.metrics_token}
    return [f"{name}: at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 16`)"
            for name, token in named.items() if token and len(token) < MIN_TOKEN_CHARS]


def _check_secrets(secrets: Secrets, verify: Any) -> list[str]:
    if verify is False:
        return []
    if not secrets.telnyx_public_key:
        return [
            "TELNYX_PUBLIC_KEY: not set. Copy it from the Telnyx portal (Keys & Credentials > Public Key); "
            "for local development only, set webhook.verify_signatures: false"
        ]
    keys = secrets.telnyx_public_keys
    if len(keys) > MAX_PUBLIC_KEYS or "" in keys:
        return [f"TELNYX_PUBLIC_KEY: one key, or {MAX_PUBLIC_KEYS} separated by a comma during a rotation"]
    return [problem for key in keys if (problem := _check_public_key(key))]


def _check_public_key(key_b64: str) -> str | None:
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        return "TELNYX_PUBLIC_KEY: not valid base64"
    if len(key) != 32:
        return f"TELNYX_PUBLIC_KEY: an Ed25519 public key is 32 bytes, this one decodes to {len(key)}"
    return None
