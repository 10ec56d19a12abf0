# The two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

# A first run gets the example configuration (three example staff and a team), so that the
# console has someone to sign in as; `gongdan serve` prints their one-time sign-in links.
run: $(VENV)/.installed
	@test -n "$$GONGDAN_CONFIG" -o -f gongdan.toml || { cp gongdan.example.toml gongdan.toml && \
	  echo "gongdan.toml created from gongdan.example.toml (example staff: li, wang, zhao); edit it for your own"; }
	$(BIN)/gongdan db upgrade
	$(BIN)/gongdan serve

test: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bot storage tests bench
	$(BIN)/ruff format --check bot storage tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/sla.py

# Refit the intake model from bot/nlp/data/intake/{train,dev}.jsonl, then score it on the
# held-out splits, test and test2.
model: $(VENV)/.installed-dev
	$(BIN)/gongdan train
	$(BIN)/gongdan train --score test
	$(BIN)/gongdan train --score test2

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
