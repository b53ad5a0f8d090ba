"""Shared fixtures: the example config with a generated key, the app wired to recording fakes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from config import build_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def example_config() -> dict:
    return yaml.safe_load((ROOT / "config.example.yml").read_text())


@pytest.fixture
def raw_config(example_config, tmp_path) -> dict:
    """A mutable copy of config.example.yml, logging its calls into the test's temp dir."""
    raw = copy.deepcopy(example_config)
    raw["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    return raw


@pytest.fixture
def settings(raw_config):
    raw_config["webhook"]["verify_signatures"] = False
    return build_settings(raw_config, {})
