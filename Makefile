# `make demo` and `make test` each set up the virtual environment they need, then run.
# Every install takes its versions from the lock, constraints.txt (all extras, pinned: what CI
# tests); `make lock` re-resolves it after a change to pyproject.toml's dependencies, keeping the
# pins it can, `make lock-upgrade` moves every pin to the newest release that fits, and
# `make lock-check` (CI) fails when the lock no longer matches pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := constraints.txt
# uv resolves the lock; it lives in a venv of its own, so the project's venv holds just the lock
UV_VERSION ?= 0.13.9
UV_VENV := $(VENV)/.uv-$(UV_VERSION)
UV := $(UV_VENV)/bin/uv
LOCK_CMD = UV_CUSTOM_COMPILE_COMMAND="make lock" $(UV) pip compile --quiet pyproject.toml --all-extras --universal

.PHONY: demo test lint install clean benchmarks lock lock-upgrade lock-check wheel-check

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/abplatform run experiments/onesearch_v2_vs_v1.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff (with a complexity limit) on the package and the dashboard, and mypy, as configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check abplatform dashboards
	$(BIN)/mypy

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/spine_world_replay.py

.PHONY: dashboard
dashboard: $(STAMP)
	$(BIN)/abplatform dashboard --results results

# the installed wheel (not the source tree) runs an experiment and serves the dashboard
wheel-check: $(STAMP)
	bash .ci/wheel_check.sh

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet 'uv==$(UV_VERSION)'

lock: $(UV)
	$(LOCK_CMD) -o $(LOCK)

lock-upgrade: $(UV)
	$(LOCK_CMD) -o $(LOCK) --upgrade

# re-resolves a copy of the lock (its pins preferred, as `make lock` does): any difference means
# pyproject.toml changed without `make lock`
lock-check: $(UV)
	cp $(LOCK) $(UV_VENV)/check.txt
	$(LOCK_CMD) -o $(UV_VENV)/check.txt
	@diff -u $(LOCK) $(UV_VENV)/check.txt || { echo "$(LOCK) does not match pyproject.toml: run make lock" >&2; exit 1; }

clean:
	rm -rf $(VENV) results data .pytest_cache
