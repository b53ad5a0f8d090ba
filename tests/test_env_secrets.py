"""env_secrets.py and its use in config.py: secrets from NAME or from the file NAME_FILE names."""

from __future__ import annotations

import base64

import pytest

from config import ConfigError, build_settings
from env_secrets import MAX_SECRET_BYTES, read_secret

PUBLIC_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(32, 64))).decode()


def test_value_comes_from_the_variable_when_no_file_is_named():
    problems: list[str] = []
    assert read_secret({"TELNYX_API_KEY": "KEY_direct"}, "TELNYX_API_KEY", problems) == "KEY_direct"
    assert problems == []


def test_value_comes_from_the_file_without_its_trailing_newline(tmp_path):
    path = tmp_path / "api_key"
    path.write_text("KEY_from_file\n")
    problems: list[str] = []
    assert read_secret({"TELNYX_API_KEY_FILE": str(path)}, "TELNYX_API_KEY", problems) == "KEY_from_file"
    assert problems == []


def test_both_set_is_a_problem(tmp_path):
    path = tmp_path / "api_key"
    path.write_text("KEY_from_file")
    problems: list[str] = []
    env = {"TELNYX_API_KEY": "KEY_direct", "TELNYX_API_KEY_FILE": str(path)}
    assert read_secret(env, "TELNYX_API_KEY", problems) == ""
    assert problems == ["TELNYX_API_KEY and TELNYX_API_KEY_FILE: both are set; set only one"]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (b"\xff\xfe key", "not UTF-8"),
    (b"x" * (MAX_SECRET_BYTES + 1), "larger than"),
])
def test_unusable_file_is_a_problem_naming_the_variable(tmp_path, content, message):
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    problems: list[str] = []
    assert read_secret({"OPENAI_API_KEY_FILE": str(path)}, "OPENAI_API_KEY", problems) == ""
    assert len(problems) == 1 and problems[0].startswith("OPENAI_API_KEY_FILE: ") and message in problems[0]


def test_every_secret_reads_its_file(example_config, tmp_path):
    files = {"TELNYX_API_KEY": "KEY_api", "TELNYX_PUBLIC_KEY": PUBLIC_KEY, "OPENAI_API_KEY": "sk-test",
             "MESSAGES_WEBHOOK_SECRET": "whsec_dGVzdA=="}
    env = {}
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
        env[name + "_FILE"] = str(tmp_path / name)
    secrets = build_settings(example_config, env).secrets
    assert secrets.telnyx_api_key == "KEY_api"
    assert secrets.telnyx_public_keys == (PUBLIC_KEY,)
    assert secrets.openai_api_key == "sk-test" and secrets.llm_configured
    assert secrets.messages_webhook_secret == "whsec_dGVzdA=="
    assert "KEY_api" not in repr(secrets) and "whsec" not in repr(secrets)


def test_a_missing_file_stops_the_service_with_the_other_problems(raw_config, tmp_path):
    raw_config["dialog"]["max_turns"] = 0
    env = {"TELNYX_PUBLIC_KEY": PUBLIC_KEY, "TELNYX_API_KEY_FILE": str(tmp_path / "absent")}
    with pytest.raises(ConfigError) as caught:
        build_settings(raw_config, env)
    assert any(p.startswith("TELNYX_API_KEY_FILE: cannot read") for p in caught.value.problems)
    assert any(p.startswith("dialog.max_turns") for p in caught.value.problems)


def test_two_public_keys_are_accepted_during_a_rotation(example_config):
    settings = build_settings(example_config, {"TELNYX_PUBLIC_KEY": f"{PUBLIC_KEY}, {OTHER_KEY}"})
    assert settings.secrets.telnyx_public_keys == (PUBLIC_KEY, OTHER_KEY)


@pytest.mark.parametrize("value, message", [
    (f"{PUBLIC_KEY},{OTHER_KEY},{PUBLIC_KEY}", "separated by a comma"),
    (f"{PUBLIC_KEY},", "separated by a comma"),
    (f"{PUBLIC_KEY},not base64!", "not valid base64"),
])
def test_public_key_lists_that_cannot_be_right_are_refused(example_config, value, message):
    with pytest.raises(ConfigError, match=message):
        build_settings(example_config, {"TELNYX_PUBLIC_KEY": value})
