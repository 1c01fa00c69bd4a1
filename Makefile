# `make dev` starts the whole stack on the embedded defaults; `make test` runs the checks.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test lint worker api bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(PY) -m workers.dev

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

worker: $(STAMP)
	$(PY) -m workers.main

api: $(STAMP)
	$(PY) -m api.main

bench: $(STAMP)
	$(PY) -m bench.routing
	$(PY) -m bench.inventory

clean:
	rm -rf .oms
