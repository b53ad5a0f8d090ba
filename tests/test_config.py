"""Config loading: the example is valid, secrets come from the environment, every problem is listed at once."""

from __future__ import annotations

import base64

import pytest
import yaml

from config import ConfigError, build_settings, load_settings

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
    assert build_settings(raw_config, {}).get("webhook.verify_signatures") is False


def test_every_problem_is_listed_in_one_error(raw_config):
    raw_config["dialog"]["min_confidence"] = 7
    raw_config["assistant"]["voice"] = 3
    del raw_config["ai"]["model"]
    raw_config["transfer"]["destinations"]["bad"] = "555-0100"
    raw_config["intents"][0]["action"] = "dance"
    with pytest.raises(ConfigError) as raised:
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": PUBLIC_KEY})
    text = str(raised.value)
    for expected in [
        "dialog.min_confidence: must be between 0 and 1",
        "assistant.voice: expected text",
        "ai.model: missing",
        "transfer.destinations.bad: must be an E.164 number",
        "intents[0]: action: must be one of",
    ]:
        assert expected in text
    assert len(raised.value.problems) == 5


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
    assert settings.get("business.name") == "Harbor Vets"


@pytest.mark.parametrize("content, message", [("a: [unclosed", "not valid YAML"), ("- just\n- a list", "mapping")])
def test_unreadable_config_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.yml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yml", env={})
