# The verbs a user types. Every target prepares what it needs (scripts/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
BOOTSTRAP := scripts/bootstrap.sh

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install uv, Python deps (.venv) and Java if missing
	@$(BOOTSTRAP)

.PHONY: demo
demo: setup ## Run the whole pipeline once as local processes (stops what it started)
	@$(VENV)/devstack demo

.PHONY: up
up: setup ## Start Kafka (+ Resonate server if available) and keep it running; adds it to .env
	@$(VENV)/devstack up

.PHONY: down
down: setup ## Stop what `make up` started
	@$(VENV)/devstack down

.PHONY: status
status: setup ## Show the local stack
	@$(VENV)/devstack status

.PHONY: jaeger
jaeger: setup ## Build Jaeger v2 from its Go module (once, several minutes); up/demo then trace
	@$(VENV)/devstack jaeger

.PHONY: trace
trace: setup ## Print a tombstone's trace from the local Jaeger (ID=<tombstone id>)
	@test -n "$(ID)" || { echo "usage: make trace ID=<tombstone id>"; exit 2; }
	@$(VENV)/devstack trace "$(ID)"

.PHONY: topics
topics: setup ## Create the topics on the local stack (after `make up`)
	@$(VENV)/setup-topics

# Every tier, as its own pytest session (a failure names its tier), in two lanes side by side,
# each tier on ports, a broker and a server of its own: integration, durable (mostly waiting out
# leases and outages) and images; e2e, unit and chart. The lanes take about as long as each other
# (each tier prints its slowest tests: rebalance them from there).
TEST_LANES ?= integration,durable,images e2e,unit,chart
.PHONY: test
test: setup test-tools ## Every tier below (starts its own broker; Resonate tests need a server binary)
	@scripts/test-tiers.sh $(TEST_LANES)

TIERS := unit integration durable e2e chart images
.PHONY: $(addprefix test-,$(TIERS))
test-unit: setup ## Unit tests (no broker, no server; under a minute)
	@scripts/test-tiers.sh unit
test-integration: setup ## Integration tier: a real broker, each test in local and durable mode
	@scripts/test-tiers.sh integration
test-durable: setup ## Durable tier: crash, outage and upgrade tests against a real Resonate server
	@scripts/test-tiers.sh durable
test-e2e: setup test-tools ## End-to-end tier: the console scripts, traces in Jaeger, the docs, the benchmark smoke run
	@scripts/test-tiers.sh e2e
test-chart: setup ## Chart tier: rendering and schema checks (builds helm when missing)
	@$(K8S_TOOLS) helm >/dev/null || echo "note: helm is unavailable; the chart tests will be skipped"
	@scripts/test-tiers.sh chart
test-images: setup ## Image tier: builds and runs the three service images (needs Docker)
	@$(VENV)/python -m tests.images.docker
	@scripts/test-tiers.sh images

# What the tests use that takes minutes to build, built before the test run (never under a
# test's timeout): helm, Jaeger, and the service images when Docker answers and they are missing.
# Without Go or Docker the tests that need them skip with the reason.
.PHONY: test-tools
test-tools:
	@$(K8S_TOOLS) helm >/dev/null || echo "note: helm is unavailable; the chart tests will be skipped"
	@$(VENV)/devstack jaeger >/dev/null || echo "note: Jaeger is unavailable; the trace tests will be skipped"
	@$(VENV)/python -m tests.images.docker

CHAOS_RUNS ?= 1
.PHONY: chaos
chaos: setup ## Chaos test: 3 processors, kills and restarts (CHAOS_RUNS=3, CHAOS_SEED=…)
	@for run in $$(seq $(CHAOS_RUNS)); do \
	  echo "chaos run $$run/$(CHAOS_RUNS)"; $(VENV)/pytest tests/chaos -m chaos -q -p no:cacheprovider || exit 1; \
	done

.PHONY: clean
clean: down ## Stop the stack and delete its data (.stack/)
	rm -rf .stack

include mk/kubernetes.mk
include mk/bench.mk
