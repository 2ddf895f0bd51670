# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test lint type pytest bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/stablewatch run

check: $(STAMP)
	$(BIN)/stablewatch check

lint: $(DEVSTAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/lint-imports --no-cache

type: $(DEVSTAMP)
	$(BIN)/mypy bot

pytest: $(DEVSTAMP)
	$(BIN)/pytest -q

test: lint type pytest

bench: $(DEVSTAMP)
	$(BIN)/python -m bench.poll_cycle
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.burst
	$(BIN)/python -m bench.digest
	$(BIN)/python -m bench.backtest
	$(BIN)/python -m bench.live
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
