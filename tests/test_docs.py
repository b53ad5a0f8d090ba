"""The README and the code must agree: every config key documented, every handled event explained."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT
from dialog import HANDLERS

README = (ROOT / "README.md").read_text()
# Sections whose children are data, documented as one key.
OPAQUE = {"intents", "transfer.destinations"}


def config_keys(node, prefix: str = "") -> list[str]:
    if prefix in OPAQUE or not isinstance(node, dict):
        return [prefix]
    return [key for name, child in node.items() for key in config_keys(child, f"{prefix}.{name}".lstrip("."))]


def documented_keys() -> set[str]:
    table = README.split("| key | default | meaning |")[1].split("\n\n")[0]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", table, flags=re.MULTILINE))


def test_every_config_key_is_in_the_readme_table(example_config):
    missing = [key for key in config_keys(example_config) if key not in documented_keys()]
    assert missing == []


def test_the_readme_documents_no_key_that_does_not_exist(example_config):
    keys = set(config_keys(example_config))
    assert documented_keys() - keys == set()


def test_every_handled_event_type_is_in_how_it_works():
    how_it_works = README.split("## How it works")[1].split("## Configuration")[0]
    missing = [t for t in HANDLERS if f"`{t.removeprefix('leg.')}`" not in how_it_works]
    assert missing == []


def test_quickstart_is_the_two_make_targets():
    quickstart = README.split("## Quickstart")[1].split("##")[0]
    commands = re.findall(r"^make (\w+)", quickstart, flags=re.MULTILINE)
    assert commands == ["demo", "test"]
    makefile = Path(ROOT / "Makefile").read_text()
    assert all(re.search(rf"^{c}:", makefile, flags=re.MULTILINE) for c in commands)
