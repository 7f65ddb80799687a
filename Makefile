# The lab's entry points. `make demo` and `make test` work on a fresh machine: both create .venv and install first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: venv demo test lint format bench clean system-deps node-deps

venv: $(STAMP)

# Artillery for scripts/load-test.sh and its test (package-lock.json pins it; .npmrc skips install scripts).
node-deps: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json .npmrc
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "note: npm not found; the Artillery load-test test will skip"; fi

# Debian's Chromium, for the test that opens the HTML cold-start report in a real headless browser.
system-deps:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the HTML report test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium not found and cannot be installed here; the HTML report browser test will skip"; fi

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11+" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lambdalab demo

test: $(STAMP) system-deps node-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/shellcheck scripts/*.sh .ci/run

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
