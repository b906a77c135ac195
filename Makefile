# make demo: set up and run the whole pipeline on ../shared/data
# make test: set up, lint (ruff) and run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data

.PHONY: setup sysdeps lint test test-tools test-all browser-deps test-browser demo bench clean

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

lint: setup
	$(PY) -m ruff check src tests benchmarks scripts

test: lint
	$(PY) -m pytest -q

# the benchmarks and make_detect_fakes on tiny inputs and the kill -9 trials (slow-marked, ~5 min here; CI runs them after `make test`):
# scripts that no default test runs rot unnoticed (four had, after the checkpoint header became a dataclass)
test-tools: setup
	$(PY) -m pytest -q -m slow tests/test_benchmarks.py tests/test_kill_trials.py tests/test_make_detect_fakes.py

test-all: setup
	$(PY) -m pytest -q -m ''

# doppel ui in a real browser (tests/ui/test_browser.py; CI runs it after `make test`): Debian's chromium
# (~350 MB, ~2 min; installed as root with apt) and playwright (~165 MB, pip). Writes nothing into the repo unless
# DOPPEL_UI_SCREENSHOTS=1 is set: then the tab screenshots go to docs/img/ and the result pages to out/ui_shots/
BROWSER_STAMP := $(VENV)/.browser

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[browser]'
	touch $(BROWSER_STAMP)

browser-deps: setup $(BROWSER_STAMP)
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: /usr/bin/chromium missing; browser tests are skipped (apt-get install chromium)"; fi; }

test-browser: browser-deps
	$(PY) -m pytest -q -m slow tests/ui/test_browser.py

demo: setup
	$(PY) scripts/demo.py --data $(DATA) --out demo_out

clean:
	rm -rf $(VENV) demo_out .pytest_cache
