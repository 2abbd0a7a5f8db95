# ChronoFlow's front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PyPI into a project-local venv; it must use the machine's Python 3.11 because
# these machines cannot download interpreters.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := 3.11
export UV_LINK_MODE := copy
RUN := $(UV) run --frozen --no-sync

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	python3.11 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock $(wildcard libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)
	$(UV) sync --all-packages --locked
	@touch $@

.PHONY: install
install: .venv/.synced ## Create the environment (uv, every workspace member, dev tools)

.PHONY: lock
lock: $(UV) ## Re-resolve uv.lock and sync after changing a pyproject.toml
	$(UV) lock
	$(UV) sync --all-packages --locked
	@touch .venv/.synced

.PHONY: run
run: install ## Start the whole system on embedded NATS + Postgres (Ctrl-C stops it)
	$(RUN) chronoflow-devstack

.PHONY: test
test: install ## Run the whole test suite (starts private nats-server and Postgres)
	$(RUN) pytest

.PHONY: lint
lint: install ## ruff lint + format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: typecheck
typecheck: install ## mypy strict over every member
	@# One run per member: members whose folder has a hyphen would otherwise clash on
	@# module names such as tests/conftest.
	@set -e; for d in libs/* services/* tools/*; do echo "mypy $$d"; $(RUN) mypy $$d; done
	$(RUN) mypy tests bench conftest.py

.PHONY: check
check: lint typecheck test ## Everything CI checks: lint, types, tests

.PHONY: fmt
fmt: install ## Format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: docs
docs: install ## Regenerate the exported event schemas and AsyncAPI document in docs/
	$(RUN) python -m chronoflow_contracts.export docs/contracts

.PHONY: clean
clean: ## Remove the environment and caches (keeps .data)
	rm -rf .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
