# Utfall. Two commands on a fresh machine: `make run` and `make test`.
UV := scripts/uv
RUN := $(UV) run --frozen --no-sync

.PHONY: install run test test-unit test-integration test-e2e lint format soak bench bench-tools bench-profile bench-smoke schemas run-observability clean

install: .state/installed
.state/installed: uv.lock pyproject.toml deploy/local/kafka/pom.xml deploy/local/keycloak/pom.xml scripts/bootstrap.sh tests/browser/package-lock.json
	scripts/bootstrap.sh --system  # the tools the tests call too (promtool, docker-compose, chromium), where apt can
	@mkdir -p .state && touch $@

run: install                     ## the whole stack, with a demo provider streaming data (UTFALL_DEMO=0 for none)
	$(RUN) utfall-local run

run-observability: install       ## Prometheus scraping the local stack started by `make run`
	$(RUN) python -m utfall_platform.local.observability

test: install                    ## every tier (unit, integration, e2e) on real Kafka and Postgres
	$(RUN) pytest

test-unit: install
	$(RUN) pytest -m unit

test-integration: install
	$(RUN) pytest -m integration

test-e2e: install
	$(RUN) pytest -m e2e

lint: install
	$(RUN) ruff check .
	$(RUN) mypy -p utfall_events -p utfall_platform -p utfall_stats -p utfall_synthetic -p utfall_ingest -p utfall_measures -p utfall_contracts -p utfall_gateway -p utfall_admin

format: install
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

soak: install                    ## long fault-injection runs (100k events, kills, broker and database restarts)
	$(RUN) pytest -m soak -o addopts="" -p no:randomly

BROKERS ?= 3                     # make bench BROKERS=1: without the cluster step

bench-tools:                     # wrk offers the gateway its load (a Python client cannot reach 500 rps here)
	@command -v wrk >/dev/null || scripts/bootstrap.sh --system

bench: install bench-tools       ## benchmarks beside a raw aiokafka baseline; JSON under results/
	$(RUN) python -m benchmarks.run --replicas 2 --brokers $(BROKERS)

bench-profile: install bench-tools ## a medium run with the pipeline step profiled (cProfile) per service
	$(RUN) python -m benchmarks.run --size medium --profile

bench-smoke: install
	$(RUN) python -m benchmarks.run --smoke

schemas: install                 ## regenerate the checked-in JSON Schemas from the pydantic models
	$(RUN) python -m utfall_events.schemas

clean:
	rm -rf .state/local .pytest_cache .mypy_cache .ruff_cache
