"""Shared fixtures: the example config with a generated key, the app wired to recording fakes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from config import build_settings

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["figures_plugin"]  # prints the reliability figures; --figures-md rewrites RELIABILITY.md


@pytest.fixture(scope="session")
def example_config() -> dict:
    """config.example.yml as loaded; shared by the session, so copy it before changing anything."""
    return yaml.safe_load((ROOT / "config.example.yml").read_text())


@pytest.fixture
def raw_config(example_config, tmp_path) -> dict:
    """A mutable copy of config.example.yml, logging its calls into the test's temp dir."""
    raw = copy.deepcopy(example_config)
    raw["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    return raw


@pytest.fixture
def settings(raw_config):
    """The example config as Settings: verification off, nothing from the environment."""
    raw_config["webhook"]["verify_signatures"] = False
    return build_settings(raw_config, {})


@pytest.fixture(scope="session")
def keypair():
    """(private key, base64 public key), generated for this test run; nothing real."""
    from fixtures import new_keypair

    return new_keypair()


@pytest.fixture
def telnyx():
    """The in-process Call Control fake (fakes.RecordingTelnyx): records every command."""
    from fakes import RecordingTelnyx

    return RecordingTelnyx()


@pytest.fixture
def scripted_brain():
    """A brain answering from a script (fakes.ScriptedBrain); a steady "continue" reply when the script is empty."""
    from fakes import ScriptedBrain

    return ScriptedBrain()


@pytest.fixture
def fake_model():
    """The one fake OpenAI-compatible server (tests/fake_openai.py), on loopback, scripted per test."""
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_app(keypair, example_config):
    """Build the service the way `create_app` does in production, with whatever the test passes in.

    `config` is a raw YAML mapping or Settings (the example config, verification on, when left out); `env`
    adds environment variables to the generated public key. Every app made is shut down after the test.
    """
    from app import create_app

    made = []

    def make(config=None, *, env=None, **seams):
        if config is None or isinstance(config, dict):
            raw = config or copy.deepcopy(example_config)
            config = build_settings(raw, {"TELNYX_PUBLIC_KEY": keypair[1], **(env or {})})
        service = create_app(config, **seams)
        made.append(service)
        return service

    yield make
    for service in made:
        service.extensions["receptionist"].shutdown()


@pytest.fixture
def app(make_app, raw_config, telnyx, scripted_brain):
    """The service on the example config, verifying signatures, wired to `telnyx` and `scripted_brain`."""
    return make_app(raw_config, telnyx=telnyx, brain=scripted_brain)


@pytest.fixture
def client(app):
    """The Flask test client of `app`."""
    return app.test_client()


@pytest.fixture
def settle():
    """`settle(app_or_receptionist)` waits until no call has work queued or running (background.settle)."""
    from background import settle as wait

    return wait


@pytest.fixture
def post_webhook(client, keypair):
    """Sign and POST a webhook body (a dict, or raw bytes) the way Telnyx does."""
    import json
    import time

    from fixtures import sign

    def post(body, *, timestamp: int | None = None, extra_headers: dict | None = None, key=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {**sign(raw, key or keypair[0], stamp), **(extra_headers or {})}
        return client.post("/webhooks/telnyx", data=raw, headers=headers, content_type="application/json")

    return post

