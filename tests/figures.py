"""Figures the reliability and security tests report: how many hostile or faulty things were tried, how many held.

A test calls `record(threat, attempted, handled)` once its assertions have passed, with counts it measured
(never literals), so a figure only ever describes something that held or a known loss the test pins down.
pytest prints every figure at the end of the run (tests/figures_plugin.py), and `pytest --figures-md
RELIABILITY.md` (what `make soak` runs) rewrites the figures table between the markers in that file, but
only when every test of the run passed: the document shows what the last full, passing run measured.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
ON_REDIS = re.compile(r"[\[-]redis[\]-]")


@dataclass(frozen=True)
class Figure:
    threat: str
    test: str
    attempted: int
    handled: int
    note: str = ""

    @property
    def held(self) -> bool:
        return self.handled == self.attempted


FIGURES: list[Figure] = []


def record(threat: str, attempted: int, handled: int, note: str = "") -> Figure:
    """Remember one figure for the current test; `handled` counts the attempts that came out safe.

    Call it after the test's assertions: a test that fails must leave no figure behind."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "? (call)").rsplit(" ", 1)[0]
    if ON_REDIS.search(current):  # a both_stores test: its two runs are two rows
        threat += ", Redis store"
    figure = Figure(threat, current, attempted, handled, note)
    FIGURES.append(figure)
    return figure


def table(figures: list[Figure]) -> str:
    """A Markdown table, one row per figure, in the order the tests ran."""
    rows = ["| threat | test | attempted | handled | held | note |", "|---|---|---|---|---|---|"]
    for f in figures:
        held = "yes" if f.held else "**no**"
        rows.append(f"| {f.threat} | `{f.test}` | {f.attempted} | {f.handled} | {held} | {f.note} |")
    return "\n".join(rows)


def rewrite(path: Path, figures: list[Figure], stamp: str) -> None:
    """Replace what stands between the markers in `path` with a fresh table."""
    text = path.read_text(encoding="utf-8")
    body = f"{START}\n_Written by `make soak` on {stamp}; do not edit by hand._\n\n{table(figures)}\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {START} ... {END} markers")
    path.write_text(pattern.sub(lambda _: body, text), encoding="utf-8")
