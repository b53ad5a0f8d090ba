# Every target the README shows. Each one creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run demo demo-redis demo-serve test lint bench soak clean

venv: $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: venv
	$(BIN)/gunicorn 'app:create_app()' --config gunicorn.conf.py

demo: venv
	$(BIN)/python -m simulator demo

# The same calls on the scaled-out service: a temporary redis-server, two instances of two workers.
demo-redis: venv
	$(BIN)/python -m simulator demo --redis

# The scenarios, then the service left running with the operator page on: sign in at /admin, curl /metrics,
# press Enter to place another call.
demo-serve: venv
	$(BIN)/python -m simulator demo --serve

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# Every reliability and security test, the long ones included; rewrites the figures table in RELIABILITY.md,
# but only when every test passed (a failing run leaves the file as it was and says so).
soak: venv
	$(BIN)/python -m pytest -m "soak or not soak" tests/security tests/reliability --figures-md RELIABILITY.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
