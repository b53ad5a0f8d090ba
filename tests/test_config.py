"""Config loading: the example is valid, secrets come from the environment, every problem is listed at once."""

from __future__ import annotations

import base64

import pytest
import yaml
from pydantic import BaseModel

from config import (
    ACTIONS,
    SPEAK_LANGUAGES,
    TRANSCRIPTION_LANGUAGES,
    VOICE_PROVIDERS,
    ConfigError,
    Intent,
    Settings,
    build_settings,
    load_settings,
)

PUBLIC_KEY = base64.b64encode(bytes(range(32))).decode()


def test_example_config_is_valid_with_a_public_key(example_config):
    settings = build_settings(example_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.destinations["front_desk"] == "+15555550100"
    assert len(settings.intents) >= 3
    assert settings.secrets.telnyx_base_url == "https://api.telnyx.com/v2"


def test_secrets_come_from_the_environment(example_config):
    env = {
        "TELNYX_PUBLIC_KEY": PUBLIC_KEY,
        "TELNYX_API_KEY": "KEY_sentinel",
        "TELNYX_BASE_URL": "http://127.0.0.1:9/v2/",
        "OPENAI_BASE_URL": "http://127.0.0.1:8/v1",
    }
    settings = build_settings(example_config, env)
    assert settings.secrets.telnyx_api_key == "KEY_sentinel"
    assert settings.secrets.telnyx_base_url == "http://127.0.0.1:9/v2"
    assert settings.secrets.llm_configured
    assert "KEY_sentinel" not in repr(settings.secrets)


def test_missing_public_key_refuses_to_start(example_config):
    with pytest.raises(ConfigError, match="TELNYX_PUBLIC_KEY: not set"):
        build_settings(example_config, {})


@pytest.mark.parametrize(
    "key, message",
    [("not base64!!", "not valid base64"), (base64.b64encode(b"short").decode(), "32 bytes")],
)
def test_malformed_public_key_refuses_to_start(example_config, key, message):
    with pytest.raises(ConfigError, match=message):
        build_settings(example_config, {"TELNYX_PUBLIC_KEY": key})


def test_verification_can_be_turned_off_explicitly(raw_config):
    raw_config["webhook"]["verify_signatures"] = False
    assert build_settings(raw_config, {}).webhook.verify_signatures is False


def test_every_problem_is_listed_in_one_error(raw_config):
    raw_config["dialog"]["min_confidence"] = 7
    raw_config["assistant"]["voice"] = 3
    del raw_config["ai"]["model"]
    raw_config["transfer"]["destinations"]["bad"] = "555-0100"
    raw_config["intents"][0]["action"] = "dance"
    assert_all_listed(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY}, [
        "dialog.min_confidence: must be between 0 and 1",
        "assistant.voice: expected text",
        "ai.model: missing",
        "transfer.destinations.bad: must be an E.164 number",
        "intents[0]: action: must be one of",
    ])


def problems_of(raw_config: dict) -> list[str]:
    """The problems ConfigError lists for this config, with a valid public key in the environment."""
    with pytest.raises(ConfigError) as raised:
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    return raised.value.problems


def assert_all_listed(raw_config: dict, env: dict, expected: list[str]) -> None:
    """One ConfigError names every expected problem, and no other."""
    with pytest.raises(ConfigError) as raised:
        build_settings(raw_config, env)
    text = str(raised.value)
    for problem in expected:
        assert problem in text
    assert len(raised.value.problems) == len(expected)


def test_intent_department_must_be_a_destination(raw_config):
    raw_config["intents"][0]["department"] = "nowhere"
    with pytest.raises(ConfigError, match="'nowhere' is not one of transfer.destinations"):
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})


def test_boolean_is_not_a_number(raw_config):
    raw_config["dialog"]["max_turns"] = True
    with pytest.raises(ConfigError, match="dialog.max_turns: expected a number, got a boolean"):
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})


def test_config_path_comes_from_the_environment(tmp_path, raw_config):
    path = tmp_path / "custom.yml"
    raw_config["business"]["name"] = "Harbor Vets"
    path.write_text(yaml.safe_dump(raw_config))
    settings = load_settings(env={"RECEPTIONIST_CONFIG": str(path), "TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.business.name == "Harbor Vets"


@pytest.mark.parametrize("content, message", [("a: [unclosed", "not valid YAML"), ("- just\n- a list", "mapping")])
def test_unreadable_config_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.yml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yml", env={})


# ---------------------------------------------------------------- typed sections, defaults, strictness


def test_sections_are_typed_attributes(example_config):
    settings = build_settings(example_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.dialog.min_confidence == 0.55
    assert settings.assistant.voice == "Telnyx.KokoroTTS.af"
    assert settings.telnyx.read_timeout_s == 3.0
    assert settings.calls.workers == 256
    assert settings.transfer.destinations == settings.destinations == {"front_desk": "+15555550100",
                                                                      "billing": "+15555550101"}
    assert settings.assistant.model_dump() == example_config["assistant"]
    assert isinstance(settings.intents[0], Intent)
    assert settings.intents[2].department == "front_desk"


def test_defaults_apply_when_keys_are_left_out(raw_config):
    for section in ("dialog", "transcription", "webhook", "telnyx", "calls", "call_log", "logging"):
        del raw_config[section]
    del raw_config["assistant"]["voice"], raw_config["ai"]["timeout_s"], raw_config["transfer"]["ring_timeout_s"]
    settings = build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.calls.workers == 256
    assert settings.calls.max_call_age_s == 7200
    assert settings.dialog.silence_timeout_s == 10
    assert settings.webhook.verify_signatures is True
    assert settings.assistant.voice == "Telnyx.KokoroTTS.af"
    assert settings.ai.timeout_s == 8
    assert settings.transfer.ring_timeout_s == 30
    assert settings.transcription.model_dump() == {"engine": "Google", "language": "en"}


def test_an_empty_section_means_its_defaults(raw_config):
    raw_config["dialog"] = None
    raw_config["transfer"] = {"destinations": None}
    raw_config["intents"] = None
    settings = build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.dialog.max_turns == 20
    assert settings.destinations == {}
    assert settings.transfer.default_destination is None
    assert settings.intents == ()


def test_the_business_words_have_no_default(raw_config):
    del raw_config["business"]["name"], raw_config["assistant"]["greeting"]
    raw_config["assistant"]["goodbye"] = "  "
    assert problems_of(raw_config) == [
        "business.name: missing",
        "assistant.greeting: missing",
        "assistant.goodbye: must not be empty",
    ]


REQUIRED = object()
# Keys whose example value is the sample business's own data, not the default.
SAMPLE_DATA = {"business.hours", "business.address", "business.description", "transfer.destinations",
               "transfer.default_destination", "intents", "business.timezone", "business.open", "business.closed_on",
               "assistant.after_hours_greeting"}


def model_keys(model: type[BaseModel], prefix: str = ""):
    """(dotted key, default or REQUIRED) for every key the models accept, sections opened up."""
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from model_keys(info.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", REQUIRED if info.is_required() else info.default


def test_the_example_shows_every_key_and_its_default(shipped_config):
    example_config = shipped_config
    for dotted, default in model_keys(Settings):
        node = example_config
        for part in dotted.split("."):
            assert part in node, f"{dotted} is missing from config.example.yml"
            node = node[part]
        if default is not REQUIRED and dotted not in SAMPLE_DATA:
            default = list(default) if isinstance(default, tuple) else default  # YAML has lists, not tuples
            assert node == default, f"{dotted}: config.example.yml shows {node!r}, the default is {default!r}"


@pytest.mark.parametrize(
    "where, key, message",
    [
        ((), "dialgo", "dialgo: unknown key; did you mean dialog?"),
        (("dialog",), "silence_timout_s", "dialog.silence_timout_s: unknown key; did you mean silence_timeout_s?"),
        (("intents", 0), "exmples", "intents[0]: exmples: unknown key; did you mean examples?"),
        (("webhook",), "secret",
         "webhook.secret: unknown key; expected one of max_body_bytes, timestamp_tolerance_s, verify_signatures"),
    ],
)
def test_unknown_keys_are_refused_with_a_hint(raw_config, where, key, message):
    node = raw_config
    for part in where:
        node = node[part]
    node[key] = 1
    assert problems_of(raw_config) == [message]


@pytest.mark.parametrize(
    "dotted, value, message",
    [
        ("dialog.min_confidence", True, "dialog.min_confidence: expected a number, got a boolean"),
        ("telnyx.max_attempts", False, "telnyx.max_attempts: expected a number, got a boolean"),
        ("dialog.max_turns", 2.5, "dialog.max_turns: must be a whole number"),
        ("ai.timeout_s", "8", "ai.timeout_s: expected a number, got text"),
        ("ai.enabled", 1, "ai.enabled: expected true or false, got a number"),
        ("webhook.verify_signatures", "yes", "webhook.verify_signatures: expected true or false, got text"),
        ("business.name", 42, "business.name: expected text, got a number"),
    ],
)
def test_types_are_strict(raw_config, dotted, value, message):
    section, key = dotted.split(".")
    raw_config[section][key] = value
    assert message in problems_of(raw_config)


def test_whole_numbers_are_accepted_for_fractional_settings(raw_config):
    raw_config["dialog"]["min_confidence"] = 1
    raw_config["telnyx"]["read_timeout_s"] = 5
    settings = build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    assert settings.dialog.min_confidence == 1.0
    assert settings.telnyx.read_timeout_s == 5.0


def test_every_kind_of_problem_is_listed_at_once(raw_config):
    raw_config["dialog"]["silence_timout_s"] = 5
    raw_config["dialog"]["max_turns"] = True
    raw_config["assistant"]["language"] = "en"
    raw_config["transcription"]["language"] = "en-US"
    del raw_config["assistant"]["greeting"]
    raw_config["transfer"]["default_destination"] = "reception"
    raw_config["intents"][0]["department"] = "nowhere"
    assert_all_listed(raw_config, {}, [
        "dialog.silence_timout_s: unknown key; did you mean silence_timeout_s?",
        "dialog.max_turns: expected a number, got a boolean",
        "assistant.language: 'en' is not a language Telnyx speak accepts",
        "transcription.language: 'en-US' is not a language the Google engine recognises; did you mean en?",
        "assistant.greeting: missing",
        "transfer.default_destination: 'reception' is not one of transfer.destinations",
        "intents[0]: department: 'nowhere' is not one of transfer.destinations",
        "TELNYX_PUBLIC_KEY: not set",
    ])


# ---------------------------------------------------------------- values Telnyx accepts


@pytest.mark.parametrize(
    "engine, language, accepted",
    [
        ("Google", "en", True),
        ("Google", "fil", True),
        ("Google", "en-US", False),
        ("Google", "auto_detect", False),
        ("Telnyx", "en", True),
        ("Telnyx", "auto_detect", True),
        ("Telnyx", "fil", False),
        ("Telnyx", "english", False),
    ],
)
def test_transcription_language_depends_on_the_engine(raw_config, engine, language, accepted):
    raw_config["transcription"] = {"engine": engine, "language": language}
    if accepted:
        assert build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY}).transcription.language == language
    else:
        with pytest.raises(ConfigError, match=f"'{language}' is not a language the {engine} engine recognises"):
            build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})


@pytest.mark.parametrize("language", ["en-US", "en-GB", "de-DE", "arb", "cmn-CN"])
def test_speak_language_from_the_spec_is_accepted(raw_config, language):
    raw_config["assistant"]["language"] = language
    assert build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY}).assistant.language == language


@pytest.mark.parametrize("language, hint", [("en", "; did you mean en-AU, en-GB, en-GB-WLS, en-IN, en-US?"),
                                            ("en-us", "; did you mean en-US,"), ("klingon", None)])
def test_speak_language_outside_the_spec_is_refused(raw_config, language, hint):
    raw_config["assistant"]["language"] = language
    [problem] = problems_of(raw_config)
    assert problem.startswith(f"assistant.language: '{language}' is not a language Telnyx speak accepts")
    assert hint in problem if hint else "did you mean" not in problem


@pytest.mark.parametrize(
    "voice",
    ["Telnyx.KokoroTTS.af", "AWS.Polly.Joanna-Neural", "Azure.en-US-Ava:DragonHDLatestNeural", "xAI.eve",
     "FishAudio.s2.1-pro.abc123", "ElevenLabs.eleven_multilingual_v2.21m00Tcm4TlvDq8ikWAM"],
)
def test_voices_in_the_spec_format_are_accepted(raw_config, voice):
    raw_config["assistant"]["voice"] = voice
    assert build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY}).assistant.voice == voice


@pytest.mark.parametrize(
    "voice, message",
    [
        ("female", "'female' is only for service_level basic"),
        ("male", "'male' is only for service_level basic"),
        ("Telnyx", "must look like Provider.Model.VoiceId"),
        ("Telnyx..af", "must look like Provider.Model.VoiceId"),
        ("Telnyx.Kokoro TTS.af", "must look like Provider.Model.VoiceId"),
        ("telnyx.KokoroTTS.af", "'telnyx' is not a Telnyx speak voice provider; did you mean Telnyx?"),
        ("Polly.Joanna", "'Polly' is not a Telnyx speak voice provider; expected one of AWS, Azure"),
    ],
)
def test_voices_telnyx_would_refuse_are_refused(raw_config, voice, message):
    raw_config["assistant"]["voice"] = voice
    [problem] = problems_of(raw_config)
    assert problem.startswith(f"assistant.voice: {message}")


def test_allowed_values_are_the_specs(raw_config):
    import spec

    speak = spec.request_schema("speak")["properties"]
    assert sorted(SPEAK_LANGUAGES) == sorted(speak["language"]["enum"])
    engines = spec.request_schema("transcription_start")["properties"]["transcription_engine_config"]["oneOf"]
    schemas = [engine.get("properties", {}) for engine in engines]
    by_engine = {s["transcription_engine"].get("enum", [None])[0]: s for s in schemas if "transcription_engine" in s}
    for engine, allowed in TRANSCRIPTION_LANGUAGES.items():
        assert sorted(allowed) == sorted(by_engine[engine]["language"]["enum"]), engine
    for provider in VOICE_PROVIDERS:
        assert f"**{provider}" in speak["voice"]["description"].replace("Fish Audio", "FishAudio")


def test_intents_can_still_be_built_in_code():
    intent = Intent("hours", ("when are you open",), "Nine to five.")
    assert (intent.action, intent.department) == ("continue", None)
    assert ACTIONS == ("continue", "transfer", "end")
