# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment from nothing, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: env browser peer demo test bench clean

env: $(STAMP)

# The leaderboard's browser test drives Debian's Chromium with npm's playwright-core.
BROWSER_STAMP := tests/leaderboard/browser/node_modules/.installed
browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): tests/leaderboard/browser/package-lock.json
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --silent --prefix tests/leaderboard/browser
	touch $(BROWSER_STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[all,test]'
	touch $(STAMP)

demo: env
	$(BIN)/letitwag demo --out demo-out

# CLIP_benchmark (the harness's peer check) runs in its own venv: its pins conflict with ours.
PEER_STAMP := bench-out/clip_benchmark_venv/.letitwag-installed
peer: $(PEER_STAMP)

$(PEER_STAMP): benchmarks/clip_benchmark_env.py
	$(PYTHON) benchmarks/clip_benchmark_env.py

test: env browser peer
	$(BIN)/python -m pytest -q

bench: env peer
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache
