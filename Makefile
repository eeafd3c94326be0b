# domainflow: `make run` runs the whole stack, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv system-deps services run up down status test test-unit lint format asyncapi openapi bench clean

help:
	@echo "make run      the whole stack in the foreground (Ctrl-C stops it)"
	@echo "make up       the same in the background; returns once every service is ready"
	@echo "make down     stop what 'make up' started"
	@echo "make test     every test (unit, integration against the real servers, end to end)"
	@echo "make lint     ruff and mypy --strict"
	@echo "make bench    the benchmarks"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	./deploy/install-system-deps.sh

services:
	./deploy/ensure-services.sh

run: venv system-deps services
	$(BIN)/domainflow stack run

up: venv system-deps services
	$(BIN)/domainflow stack up

down:
	$(BIN)/domainflow stack down

status: venv
	$(BIN)/domainflow stack status

test: venv system-deps services
	$(BIN)/pytest

test-unit: venv
	$(BIN)/pytest tests/unit

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

asyncapi: venv
	$(BIN)/domainflow asyncapi > docs/asyncapi.json

openapi: venv
	$(BIN)/domainflow openapi > docs/openapi.json

bench: venv system-deps services
	$(BIN)/python benchmarks/reverify_cycle.py
	$(BIN)/python benchmarks/read_path.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
