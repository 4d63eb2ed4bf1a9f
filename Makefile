# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each builds .venv from nothing when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finmm-installed
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo demo-quick test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	# the web-console test drives a real headless Chromium (Debian packages; needs root or sudo)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei) || \
	    (sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei) )
	# the shared server store's tests start a private PostgreSQL server (Debian package postgresql)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) || \
	    (sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) )
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU build from local disk; any other torch requirement pulls gigabytes of CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/finmm demo

demo-quick: $(STAMP)
	$(VENV)/bin/finmm demo --quick

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/preprocess.py
	$(PY) bench/model.py

clean:
	rm -rf $(VENV) artifacts
