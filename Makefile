# The two commands of gpbound: `make run` (the main job) and `make test` (the suite).
# Both create or refresh the project's own virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv run test bench
venv:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q torch==2.13.0
	@$(PY) -m pip install -q -e ".[test]"

run: venv
	$(VENV)/bin/gpbound report

test: venv
	$(VENV)/bin/pytest

bench: venv
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done
