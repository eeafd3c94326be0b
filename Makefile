# domainflow: `make run` runs the whole stack, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv lock system-deps services run run-cluster cluster-stop up down status test test-unit lint format asyncapi openapi bench clean

help:
	@echo "make run      the whole stack in the foreground (Ctrl-C stops it)"
	@echo "make up       the same in the background; returns once every service is ready"
	@echo "make run-cluster  the stack on a local three-node RabbitMQ cluster (make cluster-stop)"
	@echo "make down     stop what 'make up' started"
	@echo "make test     every test (unit, integration against the real servers, end to end)"
	@echo "make lint     ruff and mypy --strict"
	@echo "make bench    the benchmarks"
	@echo "make lock     recompile requirements*.txt (pinned, hashed) from pyproject.toml"

# The environment is installed from the lock, every package at its pinned version and checked
# against its hashes (pip itself and hatchling, which builds the editable install, included),
# so every machine tests what production runs. Only the project itself comes from the tree.
$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Resolved from PyPI alone (no local wheel directories or mirrors a machine's pip may be
# configured with), so the hashes are PyPI's and hold on any machine.
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock"
# `make lock` keeps the pins it can and adds what pyproject.toml gained; `make lock LOCK_UPGRADE=--upgrade` moves
# everything to the newest versions the ranges allow.
LOCK_UPGRADE ?=
LOCK_ARGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

lock: venv
	$(LOCK_ENV) $(BIN)/pip-compile $(LOCK_ARGS) $(LOCK_UPGRADE) --build-deps-for wheel \
	  -o requirements.txt pyproject.toml
	$(LOCK_ENV) $(BIN)/pip-compile $(LOCK_ARGS) $(LOCK_UPGRADE) --extra dev --build-deps-for editable \
	  -o requirements-dev.txt pyproject.toml

system-deps:
	./deploy/install-system-deps.sh

services:
	./deploy/ensure-services.sh

run: venv system-deps services
	$(BIN)/domainflow stack run

# The same stack on a local three-node RabbitMQ cluster (deploy/rabbitmq-cluster.sh).
run-cluster: venv system-deps services
	eval "$$(./deploy/rabbitmq-cluster.sh start)" && $(BIN)/domainflow stack run

cluster-stop:
	./deploy/rabbitmq-cluster.sh stop

up: venv system-deps services
	$(BIN)/domainflow stack up

down:
	$(BIN)/domainflow stack down

status: venv
	$(BIN)/domainflow stack status

# Two workers: most tests wait on servers, not on the CPU. Each worker runs whole files (their
# module fixtures start stacks once) with servers, vhosts, databases and ports of its own.
TEST_WORKERS ?= 2

test: venv system-deps services
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

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
	cd tools/asyncapi-check && npm ci --no-audit --no-fund --silent && node validate.mjs ../../docs/asyncapi.json

SES_BURST_DOMAINS ?= 500

openapi: venv
	$(BIN)/domainflow openapi > docs/openapi.json

bench: venv system-deps services
	$(BIN)/python benchmarks/reverify_cycle.py
	$(BIN)/python benchmarks/reverify_cycle.py --domains 100000 --accounts 10
	$(BIN)/python benchmarks/read_path.py
	$(BIN)/python benchmarks/metrics_scrape.py
	$(BIN)/python benchmarks/relay.py
	$(BIN)/python benchmarks/ses_burst.py --domains $(SES_BURST_DOMAINS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
