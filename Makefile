# make demo: set up and run the whole pipeline on ../shared/data
# make test: set up and run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data

.PHONY: setup sysdeps test test-all test-browser demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# espeak-ng speaks test sentences; installed when missing and we may (root, apt)
sysdeps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	  else echo "note: espeak-ng missing; tests that speak are skipped (apt-get install espeak-ng)"; fi; }

setup: $(STAMP) sysdeps

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

# doppel ui in a real browser: Debian's chromium (~350 MB, ~2 min) and playwright (~165 MB); slow tests,
# so not part of `make test`; writes the screenshots docs/ui.md shows
test-browser: setup
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m pip install -q -e '.[browser]'
	DOPPEL_UI_SCREENSHOTS=1 $(PY) -m pytest -q -m slow tests/ui/test_browser.py

demo: setup
	$(PY) scripts/demo.py --data $(DATA) --out demo_out

clean:
	rm -rf $(VENV) demo_out .pytest_cache
