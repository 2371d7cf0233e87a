# QuantumLayer Platform: the verbs a newcomer types.
#   make up     run the whole platform locally (embedded Kafka + MongoDB, every service)
#   make test   install what is missing and run every check and test
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help bootstrap sync up up-detached down status logs agent test lint fmt typecheck proto \
	proto-check unit integration e2e charts bench clean browsers

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

bootstrap: ## install uv when the machine lacks it
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet --disable-pip-version-check uv

sync: bootstrap ## create .venv from uv.lock (every service and library, dev tools)
	@$(UV) sync --frozen --all-packages --quiet

up: sync ## run the platform in the foreground (Ctrl-C stops it)
	@$(RUN) qlp up

up-detached: sync ## run the platform in the background
	@$(RUN) qlp up --detach

down: ## stop the platform
	@$(RUN) qlp down

status: ## show what is running
	@$(RUN) qlp status

logs: ## tail every log (make logs NAME=billing FOLLOW=1)
	@$(RUN) qlp logs $(NAME) $(if $(FOLLOW),-f,)

agent: sync ## run a simulated-GPU provider agent (API key in QLP_AGENT_API_KEY_FILE or QLP_AGENT_API_KEY)
	@$(RUN) qlp-agent run --gateway $(or $(GW),http://127.0.0.1:$(or $(QLP_GATEWAY_PORT),8080)) \
		--price-per-gpu-hour $(or $(PRICE),1.20) --region $(or $(REGION),eu-west) \
		--simulate-gpus $(or $(GPUS),2) $(AGENT_ARGS)

test: sync browsers lint typecheck proto-check ## every check and every test
	@$(RUN) pytest -q $(PYTEST_ARGS)

browsers: ## install Debian's Chromium for the console's browser tests when missing
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: sync ## ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

fmt: sync ## apply ruff fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

typecheck: sync ## mypy (strict on libs/ and domain layers)
	@$(RUN) mypy libs/kit/src libs/contracts/src/qlp_contracts libs/testing/src infra/src $(wildcard services/*/src)

proto: sync ## regenerate bindings from proto/ and refresh the descriptor snapshot
	@$(RUN) python -m qlp_contracts.codegen generate
	@$(RUN) python -m qlp_contracts.codegen snapshot

proto-check: sync ## fail when bindings drift from proto/ or proto/ breaks compatibility
	@$(RUN) python -m qlp_contracts.codegen check
	@$(RUN) python -m qlp_contracts.codegen compat

unit: sync ## tests that need no servers
	@$(RUN) pytest -q -m "not integration and not e2e" $(PYTEST_ARGS)

integration: sync ## tests against the real broker and database
	@$(RUN) pytest -q -m "integration or e2e" $(PYTEST_ARGS)

charts: sync ## build chart dependencies from Chart.lock, then render, lint and validate every chart
	@$(RUN) python -m qlp_infra.charts build
	@$(RUN) pytest -q tests/charts

bench: sync ## run every benchmark (or BENCH=outbox); results land in benchmarks/results/
	@set -e; for b in $(if $(BENCH),$(BENCH),$(basename $(notdir $(wildcard benchmarks/[a-z]*.py)))); do \
		echo "== benchmarks.$$b"; $(RUN) python -m benchmarks.$$b; done

clean: ## remove local state and caches
	rm -rf .qlp .pytest_cache .mypy_cache .ruff_cache
