"""Shared fixtures: the example config with a generated key, the app wired to recording fakes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from config import build_settings
from store_setup import GUARD_OFF, isolated_prefix

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["figures_plugin"]  # prints the reliability figures; --figures-md rewrites RELIABILITY.md


STORES = ("memory", "redis")


def pytest_configure(config):
    config.addinivalue_line("markers", "both_stores: run the test once per store, memory and Redis (see store_kind)")


def pytest_generate_tests(metafunc):
    """Tests marked both_stores run once per store; every other test gets the default, memory."""
    if metafunc.definition.get_closest_marker("both_stores") and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", STORES, indirect=True)


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server for the session, on a free loopback port in a temporary directory.

    Skipped with one line saying how to install it when the binary is missing (a failure in CI, where
    .ci/run sets RECEPTIONIST_REQUIRE_REDIS=1).
    """
    from redis_available import require_redis_or_skip
    from simulator.redis_server import RedisServer

    require_redis_or_skip()
    with RedisServer() as server:
        yield server


@pytest.fixture
def store_kind(request) -> str:
    """"memory" or "redis": which store the fixtures below build the service on."""
    return getattr(request, "param", "memory")


@pytest.fixture
def store_env(request, store_kind) -> dict[str, str]:
    """The environment that selects the store: REDIS_URL for Redis, nothing for memory."""
    if store_kind == "memory":
        return {}
    return {"REDIS_URL": request.getfixturevalue("redis_server").url}


@pytest.fixture(scope="session", autouse=True)
def _session_working_directory(tmp_path_factory):
    """Nothing a test writes to a relative path (admin.state_path, the call log) lands in the repository, even
    from a module-scoped fixture, which runs before the per-test directory below is entered."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path, monkeypatch):
    """Relative paths of the example config (call log, admin.state_path) land in the test's temp dir, so no
    test sees another's AI switch or rollback window."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def shipped_config() -> dict:
    """config.example.yml exactly as shipped, schedule included; for the tests that read the file as documentation."""
    return yaml.safe_load((ROOT / "config.example.yml").read_text())


@pytest.fixture(scope="session")
def example_config() -> dict:
    """config.example.yml as loaded; shared by the session, so copy it before changing anything.

    Its weekly schedule and closures are left out: tests run at any hour, and the clinic's hours would make
    their outcome depend on it. Tests of opening hours (tests/test_hours.py) set their own and freeze time.
    """
    raw = yaml.safe_load((ROOT / "config.example.yml").read_text())
    raw["business"].pop("open")
    raw["business"].pop("closed_on")
    return raw


@pytest.fixture
def raw_config(example_config, tmp_path) -> dict:
    """A mutable copy of config.example.yml, logging its calls into the test's temp dir."""
    raw = copy.deepcopy(example_config)
    raw["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    raw["redis"]["key_prefix"] = isolated_prefix()
    # The rollback guard stays out of tests about something else: many of them send dozens of calls with a
    # failing model or a transfer to one service. tests/test_ai_switch.py sets its own thresholds.
    raw["rollback"] = dict(GUARD_OFF)
    return raw


@pytest.fixture
def settings(raw_config, store_env):
    """The example config as Settings: verification off, nothing from the environment but the store's."""
    raw_config["webhook"]["verify_signatures"] = False
    return build_settings(raw_config, store_env)


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
def make_app(keypair, example_config, store_env):
    """Build the service the way `create_app` does in production, with whatever the test passes in.

    `config` is a raw YAML mapping or Settings (the example config, verification on, when left out); `env`
    adds environment variables to the generated public key. Every app made is shut down after the test.
    """
    from app import create_app

    made = []

    def make(config=None, *, env=None, **seams):
        if config is None or isinstance(config, dict):
            raw = config or copy.deepcopy({**example_config, "rollback": dict(GUARD_OFF)})
            if store_env and config is None:
                raw["redis"]["key_prefix"] = isolated_prefix()
            config = build_settings(raw, {"TELNYX_PUBLIC_KEY": keypair[1], **store_env, **(env or {})})
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

