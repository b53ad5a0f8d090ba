"""`--figures-md` (make soak) rewrites RELIABILITY.md's figures table only from a run in which every test passed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from figures import END, START, Figure
from figures_plugin import write_figures

TESTS = Path(__file__).resolve().parents[1]
DOCUMENT = f"# Reliability\n\n{START}\nthe table of the last passing run\n{END}\n\nprose after the table\n"
PASSING = '''
from figures import record


def test_holds():
    assert 1 + 1 == 2
    record("a threat that held", 3, 3, "measured")
'''
FAILING = PASSING + '''

def test_breaks():
    assert 1 + 1 == 3
'''


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "RELIABILITY.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    return path


def soak(tmp_path: Path, test_source: str, document: Path) -> subprocess.CompletedProcess:
    """A pytest run of its own, in tmp_path, with the figures plugin and --figures-md, as `make soak` runs it."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_threat.py").write_text(test_source, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "pytest", "-p", "figures_plugin", "-p", "no:cacheprovider",
               "--figures-md", str(document), "test_threat.py"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_a_run_with_a_failing_test_leaves_the_document_unchanged_and_says_so(tmp_path, document):
    done = soak(tmp_path, FAILING, document)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert document.read_text(encoding="utf-8") == DOCUMENT
    assert f"{document} left unchanged: the run did not pass (exit status 1, 1 failed)" in done.stdout


def test_a_passing_run_rewrites_the_table_between_the_markers(tmp_path, document):
    done = soak(tmp_path, PASSING, document)
    assert done.returncode == pytest.ExitCode.OK, done.stdout
    text = document.read_text(encoding="utf-8")
    assert "the table of the last passing run" not in text
    assert "| a threat that held | `test_threat.py::test_holds` | 3 | 3 | yes | measured |" in text
    assert text.startswith(f"# Reliability\n\n{START}\n") and text.endswith(f"{END}\n\nprose after the table\n")
    assert f"{document}: figures table rewritten from this run (1 rows)" in done.stdout


@pytest.mark.parametrize(("exitstatus", "failed"), [
    (pytest.ExitCode.TESTS_FAILED, 1),
    (pytest.ExitCode.INTERRUPTED, 0),
    (pytest.ExitCode.OK, 1),  # a failure the exit status does not show (a plugin changed it): still not a pass
    (pytest.ExitCode.NO_TESTS_COLLECTED, 0),
])
def test_only_a_clean_exit_with_no_failure_writes(document, exitstatus, failed):
    figures = [Figure("a threat", "tests/x.py::test_x", 2, 2)]
    outcome = write_figures(document, exitstatus, failed, figures)
    assert document.read_text(encoding="utf-8") == DOCUMENT
    assert "left unchanged: the run did not pass" in outcome


def test_a_passing_run_without_figures_leaves_the_document_alone(document):
    outcome = write_figures(document, pytest.ExitCode.OK, 0, [])
    assert document.read_text(encoding="utf-8") == DOCUMENT
    assert outcome.endswith("left unchanged: no test recorded a figure")


def test_the_stamp_says_when_and_by_what_the_table_was_written(document):
    figures = [Figure("a threat", "tests/x.py::test_x", 2, 1, "one lost")]
    write_figures(document, pytest.ExitCode.OK, 0, figures, now=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    text = document.read_text(encoding="utf-8")
    assert "_Written by `make soak` on 2026-01-02 03:04 UTC; do not edit by hand._" in text
    assert "| a threat | `tests/x.py::test_x` | 2 | 1 | **no** | one lost |" in text
