"""pytest hooks for tests/figures.py: print the figures a run recorded and, with `--figures-md PATH` (what
`make soak` passes), rewrite the figures table in PATH, but only from a run in which every test passed.

Registered by `pytest_plugins = ["figures_plugin"]` in tests/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from figures import FIGURES, Figure, rewrite, table

OPTION = "--figures-md"
OUTCOME = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=None, metavar="PATH",
                     help="rewrite the figures table in this Markdown file, if every test passes")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption(OPTION)
    if target:
        session.config.stash[OUTCOME] = write_figures(Path(target), exitstatus, session.testsfailed, FIGURES)


def write_figures(path: Path, exitstatus: int, failed: int, figures: list[Figure], now: datetime | None = None) -> str:
    """Rewrite the table in `path` when the run passed; either way, say what happened to the file."""
    if exitstatus != pytest.ExitCode.OK or failed:
        return f"{path} left unchanged: the run did not pass (exit status {int(exitstatus)}, {failed} failed)"
    if not figures:
        return f"{path} left unchanged: no test recorded a figure"
    rewrite(path, figures, (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"))
    return f"{path}: figures table rewritten from this run ({len(figures)} rows)"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures (attempted vs handled)")
        terminalreporter.write_line(table(FIGURES))
    if OUTCOME in config.stash:
        terminalreporter.write_line(config.stash[OUTCOME])
