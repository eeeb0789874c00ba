# Two commands for a newcomer: `make demo` (the main job) and `make test` (everything CI runs).
# Both install what they need: a .venv with the project and, where a test or the demo needs it, Debian's prometheus.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck contracts unit demo demo-simulate bench prometheus dashboard-browser-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,demo]'
	touch $(STAMP)

# Debian packages the tests and the demo use: the real Prometheus server (and promtool), shellcheck for e2e/kind,
# and tmux for the sandbox live-view test (a real pseudo-terminal).
prometheus:
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v shellcheck >/dev/null 2>&1 || missing="$$missing shellcheck"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check controller analysis tests bench e2e
	$(BIN)/ruff format --check controller analysis tests bench e2e

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# Debian's headless Chromium and its driver, for the dashboard's browser tests (tests/test_dashboard_browser.py).
dashboard-browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing Debian packages: chromium chromium-driver"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

unit: $(STAMP) prometheus dashboard-browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck contracts unit

demo: $(STAMP) prometheus
	$(BIN)/python -m e2e.sandbox

demo-simulate: $(STAMP)
	$(BIN)/python -m controller.cli.demo

bench: $(STAMP)
	$(BIN)/python bench/judge.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
