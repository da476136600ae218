# `make demo` and `make test` each set up the virtual environment they need, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean benchmarks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/abplatform run experiments/onesearch_v2_vs_v1.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/spine_world_replay.py

.PHONY: dashboard
dashboard: $(STAMP)
	$(BIN)/abplatform dashboard --results results

clean:
	rm -rf $(VENV) results data .pytest_cache
