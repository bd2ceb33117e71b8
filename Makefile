# `make all` is what CI runs: format check, lint, type check, tests.
PY ?= .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: all install test lint fmt typecheck run demo bench compose-check systemd-check clean

all: lint test

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(VENV_STAMP)

install: $(VENV_STAMP)

test: $(VENV_STAMP)
	$(PY) -m pytest -q

lint: $(VENV_STAMP) compose-check systemd-check
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	.venv/bin/lint-imports --no-cache

fmt: $(VENV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(VENV_STAMP)
	$(PY) -m mypy

run: $(VENV_STAMP)
	.venv/bin/registryd serve

# Starts a daemon in the background, runs the demo against it, stops it (scripts/demo.sh).
demo: $(VENV_STAMP)
	bash scripts/demo.sh

bench: $(VENV_STAMP)
	$(PY) bench/bench_get_workers.py
	$(PY) bench/bench_events.py

compose-check: $(VENV_STAMP)
	.venv/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

systemd-check: $(VENV_STAMP)
	bash scripts/check-systemd.sh

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
