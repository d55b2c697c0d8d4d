# Servicetrail. `make run` starts everything; `make test` proves it. Both set themselves up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: help setup system-deps jars run kafka lint format test test-fast bench bench-dispatch bench-analytics contracts demo \
	demo-year rebuild-analytics scale chaos fuzz clean

help:
	@echo "make run        start Kafka and every service on SQLite, print URLs and an admin token"
	@echo "make test       every test, against a real Kafka broker started from Apache Kafka's jars"
	@echo "make lint       ruff (lint + format check) and mypy (strict on the kernel and the modules already clean)"
	@echo "make format     ruff's fixes and formatting, in place"
	@echo "make test-fast  every test that needs no broker, PostgreSQL or browser, on three workers (property tests: a tenth of the examples)"
	@echo "make bench      HTTP and relay benchmarks; writes docs/benchmarks.md"
	@echo "make bench-dispatch  triaged -> job.assigned lag under load; writes docs/bench-dispatch.md"
	@echo "make kafka      a local Kafka broker on 127.0.0.1:9092 (data in var/kafka)"
	@echo "make bench-analytics  a year of 100k requests (REQUESTS=): views p50/p99, rebuild and catch-up vs raw, RSS, lag; writes docs/bench-analytics.md"
	@echo "make demo       fill a running system (make run) with a realistic month of traffic"
	@echo "make demo-year  publish a realistic year of 1M requests (REQUESTS=) straight to the topics"
	@echo "make rebuild-analytics  replay the topics into a fresh generation of a stopped analytics' DuckDB file"
	@echo "make scale      two replicas of each service in one consumer group (KAFKA_BOOTSTRAP, <SERVICE>_DATABASE_URL)"
	@echo "make chaos      fault runs (broker kill -9/SIGSTOP, service kill -9, duplicates, poison, 3-node leader loss)"
	@echo "                on their own broker(s) and services; prints the table of invariants"
	@echo "make fuzz       schemathesis over every service's OpenAPI (more examples than make test runs)"
	@echo "make contracts  export event contracts to docs/contracts (JSON Schema + AsyncAPI)"

# Java 17 runs the broker and Maven fetches its jars; the storage suites also run on a PostgreSQL server;
# the dashboard is tested in headless Chromium; compose-check (Go) validates docker-compose.yml.
# Install what is missing from Debian (root, as on our machines and CI).
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v go >/dev/null || missing="$$missing golang-go"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

setup: system-deps $(INSTALLED) jars

jars: system-deps $(INSTALLED)
	$(PY) -m deploy.kafka.launcher --jars-only

run: setup
	$(PY) -m deploy.run

kafka: setup
	$(PY) -m deploy.kafka.launcher --port 9092 --controller-port 9093 --data-dir var/kafka

test: setup
	$(PY) -m pytest

# mypy --strict holds for these (a ratchet: a module joins the list once it is clean; the rest is checked as
# code is touched). --follow-imports=silent: errors are reported for the listed modules, not what they import.
# strict mypy covers all of shared/ but its migration scripts
MYPY_STRICT := shared/kernel shared/auth shared/http shared/testing shared/domain.py shared/events.py shared/clock.py \
	shared/calendar.py shared/settings.py shared/scheduling.py shared/migrations.py shared/contracts \
	shared/eventstore shared/messaging shared/runtime.py shared/observability shared/keyset.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict --follow-imports=silent $(MYPY_STRICT)

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The fast tier: every test that needs no broker, no PostgreSQL server and no browser (marked in conftest.py);
# HTTP-contract and reaction tests run on the in-process broker, property tests on a tenth of their examples (the
# analytics SQL = reference ones on three of the eight groupings per moment: `every_or_some`; `make test` all).
# Timers run on a test clock (`shared.clock.FixedClock`: a test moves it and the deadline scheduler looks at
# once) and tests wait on signals (`shared.testing.app.settled`/`all_published`, `shared.testing.kafka.caught_up`),
# not on a real clock. Three pytest workers (pytest-xdist) on two cores, stealing work from each other: what
# waiting is left (polls of relays, consumers and workers) overlaps, and each worker more costs its own collection
# and session (~6 s of CPU): back to back on the shared 2-core box (load 10-12), 3 workers 148 s wall / 113 s CPU,
# 4 workers 157 s / 135 s; on the quiet box (load 1-3) 55-66 s wall (median 60 s of five runs; 4 workers 62-66 s)
# and 103-112 s CPU for 1,015 tests, where the tier before the test clock took 72-81 s and 130-150 s (972 tests,
# 4 workers). Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: compiling the sources and rewriting
# the test modules' asserts is half of every worker's collection; the schemathesis plugin is not loaded (only
# `make fuzz` and the kafka tier use schemathesis, as a library). Then the costliest tests were cut without
# dropping an assertion (the flat-memory export on 150/1,500 requests, the alerts' analytics from the topics' ends,
# one app per service in the OpenAPI tests, chDB imported by its test, EC keys for TLS) and gc.freeze() after
# collection (conftest.py): three same-load pairs on the busy box (load 7-15), before then after: CPU 110/109/119 s
# against 98/103/103 s, wall 252/206/179 s against 184/144/108 s (the longest single tests were among those cut).
test-fast: $(INSTALLED)
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -m "not kafka and not postgres and not browser" --hypothesis-profile=fast \
		-n $(or $(WORKERS),3) --dist worksteal -p no:schemathesis

bench: setup
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(PY) -m deploy.bench

bench-dispatch: setup
	$(PY) -m deploy.bench.dispatch_lag

bench-analytics: setup
	$(PY) -m deploy.bench.analytics --requests $(or $(REQUESTS),100000)

demo: $(INSTALLED)
	$(PY) -m deploy.demo

demo-year: $(INSTALLED)
	$(PY) -m deploy.demo_year --requests $(or $(REQUESTS),1000000)

rebuild-analytics: $(INSTALLED)
	$(PY) -m services.analytics.rebuild

scale: setup
	$(PY) -m deploy.scale --replicas 2

chaos: setup
	$(PY) -m deploy.chaos --profile full

fuzz: setup
	$(PY) -m deploy.chaos.fuzz --examples 25

contracts: $(INSTALLED)
	$(PY) -m shared.contracts.export

clean:
	rm -rf var .pytest_cache
