# Fjordbank: `make up` runs the bank, `make test` runs every test. Both install what is missing.
.PHONY: up up-detached down status test test-unit test-integration test-e2e test-browser test-deploy test-monitoring lint bootstrap lock bench bench-pipeline bench-cards bench-rescreen bench-due soak chaos audit

PY := .venv/bin/python

bootstrap:
	@scripts/bootstrap.sh

up: bootstrap            ## install what is missing, start everything, show it; Ctrl-C stops all
	@$(PY) -m devstack up

up-detached: bootstrap   ## the same, returning once everything is ready
	@$(PY) -m devstack up --detach

down:                    ## stop every component (no orphans)
	@$(PY) -m devstack down

status:
	@$(PY) -m devstack status

# the tests run two instances of the ledger and of screening (partitioned consumers)
TEST_REPLICAS ?= 2

SCANNED := fjordbank run_services functions/main.py devstack bankctl bench k8s simulators clientkit

test: bootstrap          ## lint, types and security scan (make lint), dependency audit, then every tier: unit, deploy, monitoring, integration, end-to-end, browser (starts the stack if not running)
	@$(MAKE) --no-print-directory lint
	@$(PY) scripts/audit_deps.py
	@FJB_REPLICAS_LEDGER=$(TEST_REPLICAS) FJB_REPLICAS_SCREENING=$(TEST_REPLICAS) $(PY) -m pytest

# one tier at a time; the stack tiers start the stack themselves when it is not running
test-unit: bootstrap     ## the domain, the service layer on its fake, the tools (no stack, about a minute)
	@$(PY) -m pytest tests/unit

test-integration: bootstrap  ## each component against the real emulators and NATS cluster
	@FJB_REPLICAS_LEDGER=$(TEST_REPLICAS) FJB_REPLICAS_SCREENING=$(TEST_REPLICAS) $(PY) -m pytest tests/integration

test-e2e: bootstrap      ## the whole stack through the app's surface
	@FJB_REPLICAS_LEDGER=$(TEST_REPLICAS) FJB_REPLICAS_SCREENING=$(TEST_REPLICAS) $(PY) -m pytest tests/e2e

test-browser: bootstrap  ## the reference web app in headless Chromium against the stack
	@FJB_REPLICAS_LEDGER=$(TEST_REPLICAS) FJB_REPLICAS_SCREENING=$(TEST_REPLICAS) $(PY) -m pytest tests/browser

test-deploy: bootstrap   ## the offline checks of terraform/ (no cloud needed)
	@$(PY) -m pytest tests/deploy

test-monitoring: bootstrap   ## the metrics catalogue and the alert rules' promtool tests (the scrape check needs the stack)
	@$(PY) -m pytest tests/monitoring

bench: bootstrap         ## the whole path against the platform's own limits (calibration, through the app, pipeline, K=1/K=3, hot merchant, naive, documents per payment) -> artifacts/bench/bench.{json,png} (needs `make up`; ~20 min)
	@$(PY) -m bench.run $(BENCH_ARGS)

bench-pipeline: bootstrap  ## the pipeline alone vs a naive baseline -> artifacts/bench/pipeline.{json,png} (needs `make up`)
	@$(PY) -m bench.pipeline $(BENCH_ARGS)

bench-cards: bootstrap   ## card authorisation decision times vs the processor timeout -> artifacts/bench/cards.json
	@$(PY) -m bench.cards $(BENCH_ARGS)

bench-rescreen: bootstrap  ## CPU of screening the customers again: a list of the EU's size whole vs by an update's changes -> artifacts/bench/rescreen.{json,png} (no stack)
	@$(PY) -m bench.rescreen $(BENCH_ARGS)

bench-due: bootstrap      ## the due-payments job's rate, one lane vs many, with production-like round trips -> artifacts/bench/due.{json,png} (no stack)
	@$(PY) -m bench.due $(BENCH_ARGS)

soak: bootstrap          ## 30 min of load through the app while every component's processes and memory are sampled -> artifacts/bench/soak.{json,png} (needs `make up`)
	@$(PY) -m bench.soak $(SOAK_ARGS)

chaos: bootstrap         ## seeded faults (consumers and NATS nodes killed and hung) under load through the app, then every promise checked -> artifacts/bench/chaos.{json,png} (needs `make up`)
	@$(PY) -m bench.chaos $(CHAOS_ARGS)

audit: bootstrap         ## check every money invariant of the ledger (needs the stack)
	@$(PY) -m bankctl audit

.PHONY: demo
demo: bootstrap          ## seed demo customers with a month of history and print their sign-in (needs the stack)
	@$(PY) -m bankctl demo

lint: bootstrap          ## ruff (rules, complexity <= 12, format), mypy --strict on fjordbank/ (pyproject.toml), the static security scan
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy
	@.venv/bin/bandit -q -lll -r $(SCANNED)

lock:                    ## re-pin dependencies with hashes (needs uv)
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -o requirements.lock
	uv pip compile functions/requirements.txt --generate-hashes --python-version 3.11 -o functions/requirements.lock

.PHONY: web
web: bootstrap           ## build the reference web app into web/dist (the up command builds and serves it itself)
	@cd web && npm run -s build
