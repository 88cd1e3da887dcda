# Lifecycle: `make help` lists the targets. Every target is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON3 ?= python3

export KAFKA_PORT ?= 9092
export POSTGRES_PORT ?= 5433

.PHONY: help install lint format test test-unit test-integration kafka kafka-stop \
        postgres postgres-stop servers schemas run bench bench-ingest bench-stage \
        bench-notify up down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (editable) with dev tools

lint: install ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services tests

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

kafka: install ## start the local Kafka broker (KRaft) on 127.0.0.1:$KAFKA_PORT
	@deploy/local/kafka.sh start

kafka-stop: ## stop the local Kafka broker
	@deploy/local/kafka.sh stop

postgres: ## start the local PostgreSQL on 127.0.0.1:$POSTGRES_PORT
	@deploy/local/postgres.sh start

postgres-stop: ## stop the local PostgreSQL
	@deploy/local/postgres.sh stop

# With KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL set, the tests use those servers
# and nothing local is started.
servers: install
	@if [ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then deploy/local/kafka.sh start >/dev/null; fi
	@if [ -z "$${DATABASE_URL:-}" ]; then deploy/local/postgres.sh start >/dev/null; fi

test: lint servers ## lint, then unit and integration tests against the real servers
	$(PY) -m shared.schemas --check
	$(PY) -m pytest

test-unit: install ## unit tests only (no servers)
	$(PY) -m pytest tests/unit

test-integration: servers ## integration tests only
	$(PY) -m pytest tests/integration

schemas: install ## regenerate docs/schemas/ from the contracts
	$(PY) -m shared.schemas

run: install ## the whole pipeline locally, on embedded defaults (Ctrl-C stops it all)
	$(PY) -m simulator.run $(RUN_ARGS)

# Each benchmark exits non-zero when it misses a target; `make bench` runs all
# three anyway and fails at the end if any missed.
bench: servers ## all benchmarks, one after another
	@status=0; for b in ingest stage notify; do \
	  $(MAKE) --no-print-directory bench-$$b || status=1; done; exit $$status

bench-ingest: servers ## ingest benchmark (raw producer vs /v1/batch vs /v1/track)
	$(PY) tests/bench/bench_ingest.py

bench-stage: servers ## stage-engine benchmark (naive consumer vs engine, timers, RSS)
	$(PY) tests/bench/bench_stage.py

bench-notify: servers ## notifier benchmark (actions/s against a 50 ms sink)
	$(PY) tests/bench/bench_notify.py

up: ## docker compose: Kafka and PostgreSQL in containers (needs a Docker engine)
	docker compose up -d --wait

down:
	docker compose down

clean: kafka-stop postgres-stop ## stop the local servers and delete their data
	rm -rf .local
