# Every target the README shows. Each one creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run demo test lint bench soak clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: venv
	$(BIN)/gunicorn 'app:create_app()' --config gunicorn.conf.py

demo: venv
	$(BIN)/python -m simulator demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench

soak: venv
	$(BIN)/python -m pytest -m soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
