"""deadline_worker.py's small decisions; its deadlines are tested under gunicorn in reliability/test_slow_clients.py."""

from __future__ import annotations

import logging
import resource

import pytest
from flask import Flask

from deadline_worker import DEFAULT_BODY_LIMIT, body_limit, raise_open_files_limit


def test_the_body_limit_is_the_apps_own_or_a_default():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 65537
    assert body_limit(app) == 65537
    assert body_limit(Flask(__name__)) == DEFAULT_BODY_LIMIT  # Flask's default is None: no limit of its own
    assert body_limit(object()) == DEFAULT_BODY_LIMIT


@pytest.fixture
def low_soft_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit on open files is {hard}: nothing to raise towards")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_open_files_limit_is_raised_towards_the_connections_held(low_soft_limit):
    raise_open_files_limit(2000, logging.getLogger("test"))
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (2000, low_soft_limit)


def test_the_open_files_limit_stops_at_the_hard_limit_and_says_so(low_soft_limit, caplog):
    if low_soft_limit == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files")
    raise_open_files_limit(low_soft_limit + 1, logging.getLogger("test"))
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (low_soft_limit, low_soft_limit)
    assert f"open files limited to {low_soft_limit}" in caplog.text
