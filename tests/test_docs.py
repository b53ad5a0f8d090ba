"""The README and the code must agree: every config key documented, every handled event explained."""

from __future__ import annotations

import re
from pathlib import Path

from test_config import REQUIRED, model_keys

from config import Settings
from dialog import HANDLERS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Sections whose children are data, documented as one key.
OPAQUE = {"intents", "transfer.destinations", "business.open"}


def config_keys(node, prefix: str = "") -> list[str]:
    if prefix in OPAQUE or not isinstance(node, dict):
        return [prefix]
    return [key for name, child in node.items() for key in config_keys(child, f"{prefix}.{name}".lstrip("."))]


def documented_keys() -> set[str]:
    table = README.split("| key | default | meaning |")[1].split("\n\n")[0]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", table, flags=re.MULTILINE))


def test_every_config_key_is_in_the_readme_table(shipped_config):
    missing = [key for key in config_keys(shipped_config) if key not in documented_keys()]
    assert missing == []


def test_the_readme_documents_no_key_that_does_not_exist(shipped_config):
    keys = set(config_keys(shipped_config))
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


def module_table() -> set[str]:
    table = README.split("### Modules")[1].split("\n\n", 2)[2].split("\n\n")[0]
    return set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))


def test_the_module_table_matches_the_tree():
    """Every top-level module and package is in the README's module table, and every entry exists."""
    tree = {path.name for path in ROOT.glob("*.py")}
    tree |= {f"{path.parent.name}/" for path in ROOT.glob("*/__init__.py")} | {"tests/"}
    assert module_table() == tree


def readme_defaults() -> dict[str, str]:
    table = README.split("| key | default | meaning |")[1].split("\n\n")[0]
    return dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]*) \|", table, flags=re.MULTILINE))


def shown(default) -> str:
    """A model default as the README's table writes it."""
    if default is REQUIRED:
        return "required"
    if default in (None, "", (), {}):
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default) if isinstance(default, int | float) else f"`{default}`"


def test_the_readme_defaults_are_the_models_defaults():
    documented = readme_defaults()
    wrong = {key: (documented.get(key), shown(default)) for key, default in model_keys(Settings)
             if documented.get(key, "").strip() != shown(default)}
    assert wrong == {}
