# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment from nothing, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: env demo test bench clean

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[all,test]'
	touch $(STAMP)

demo: env
	$(BIN)/letitwag demo --out demo-out

test: env
	$(BIN)/python -m pytest -q

bench: env
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache
