# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv if missing, run the gateway demo offline (no keys, no network)
#   make test   - create .venv if missing, run lint, types and the test-suite
#   make clients-check - the real Claude Code and Codex CLIs (from npm) through the gateway
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint bench bench-quick clients-check package clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/minillm demo

serve: $(STAMP)
	$(BIN)/minillm serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench clients_check
	$(BIN)/ruff format --check src
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clients-check: $(STAMP)
	$(BIN)/python -m clients_check

package: $(STAMP)
	rm -rf dist && $(BIN)/python -m build --outdir dist . >/dev/null

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
