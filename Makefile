# Two commands on a fresh machine: `make run` and `make test`. Only Python, pip and make needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test test-busy lint bench clean

$(VENV)/.run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.run
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

run: $(VENV)/.run
	$(VENV)/bin/hotline run

test: $(VENV)/.test
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# `make test` BUSY_RUNS times (default 5) beside two CPU burners: the suite stays green on a busy machine.
test-busy: $(VENV)/.test
	MAKE="$(MAKE)" bash tests/busy.sh

lint: $(VENV)/.test
	$(VENV)/bin/ruff check gateway ivr workers tests
	$(VENV)/bin/mypy

bench: $(VENV)/.test
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
