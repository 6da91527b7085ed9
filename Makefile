# A fresh clone needs exactly two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.11 when it exists, else whatever python3 is (pyproject asks for >= 3.11).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make run PORT=8000 HOST=127.0.0.1`; RAG_HOST / RAG_PORT in the environment also count.
HOST ?= $(or $(RAG_HOST),127.0.0.1)
PORT ?= $(or $(RAG_PORT),8000)
WORKERS ?= 1

# The model ships inside a Python package; nothing may be fetched from a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# Two test processes (pytest-xdist), a test file each at a time: many tests wait on servers,
# browsers and builds, so two share two cores well. `make test PYTEST_WORKERS=` runs in one.
PYTEST_WORKERS ?= -n 2 --dist loadfile

# The real index the tests build, shared by later sessions and by the notebooks (tests/conftest.py).
TEST_INDEX := $(CURDIR)/.cache/test-index

.PHONY: help venv .venv index run serve test test-fast chromium pandoc lint format eval ablations bench clean

help: ## list the targets
	@grep -E '^[a-z. -]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{sub(/ .*/, "", $$1); printf "  make %-10s %s\n", $$1, $$2}'

venv .venv: $(STAMP) ## create .venv and install the project with its dev tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first and pinned: a bare torch requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev,ray]'
	touch $@

index: $(STAMP) ## build the index, only if it is missing, stale or from another model
	$(BIN)/rag index --if-stale

run: index ## build the index if needed, then serve on HOST:PORT (default 127.0.0.1:8000)
	$(BIN)/rag serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

serve: run

# The notebooks run after the tests and reuse their index through RAG_TEST_INDEX when it is fresh.
test: chromium $(STAMP) ## lint, then the whole test suite and the notebooks
	$(BIN)/ruff check rag tests benchmarks
	RAG_TEST_INDEX=$(TEST_INDEX) $(BIN)/python -m pytest -q $(PYTEST_WORKERS) tests notebooks --nbmake

# The unit tier: the fake embedder only, no real model, server, browser or Ray cluster. What
# CI runs is `make test`, everything; this is the loop to run while editing.
test-fast: $(STAMP) ## lint, then the unit tests only (no real model, server, browser or Ray)
	$(BIN)/ruff check rag tests benchmarks
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not slow and not browser and not ray" tests

# The browser tests drive Debian's Chromium (or $CHROMIUM); a root shell (CI) installs it. First
# among test's prerequisites, so a user without it hears at once, not after the pip install.
chromium: ## install Chromium for the browser tests if it is missing (root only)
	@if [[ -x /usr/bin/chromium || ( -n "$${CHROMIUM:-}" && -x "$${CHROMIUM:-}" ) ]]; then \
		exit 0; \
	elif [[ $$(id -u) -eq 0 ]]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "make: the browser tests need /usr/bin/chromium; run: sudo apt-get install -y chromium" >&2; \
		exit 1; \
	fi

# make eval converts the handbook to DOCX (and, through HTML, to PDF) with pandoc.
pandoc: ## install pandoc for make eval if it is missing (root only)
	@if command -v pandoc >/dev/null; then \
		exit 0; \
	elif [[ $$(id -u) -eq 0 ]]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pandoc; \
	else \
		echo "make: make eval needs pandoc; run: sudo apt-get install -y pandoc" >&2; \
		exit 1; \
	fi

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check rag tests benchmarks
	$(BIN)/ruff format --check rag tests benchmarks

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format rag tests benchmarks
	$(BIN)/ruff check --fix rag tests benchmarks

eval: chromium pandoc $(STAMP) ## score every retriever on every corpus (and the handbook as PDF and DOCX): benchmarks/EVAL.md, docs/eval.png
	$(BIN)/python -m benchmarks.corpora

ablations: index ## score every ranking idea we tried on all three sets: writes benchmarks/ABLATIONS.md
	$(BIN)/python -m benchmarks.ablations

bench: $(STAMP) ## benchmarks, 45-60 min on 2 cores: writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run

clean: ## remove the virtualenv, the index and caches
	rm -rf $(VENV) index .index.tmp-* .index.old-* .cache .pytest_cache .ruff_cache *.egg-info
