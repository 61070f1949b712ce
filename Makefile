# Everything a fresh clone needs: `make demo` and `make test`, each creating .venv on first use.
# The demo installs only what running needs; tests and lint add their tools on top.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint bench redis-server browser clean

# uv installs what pip would, several times faster (a warm first `make demo` in under 10 s instead of
# 25 s); pip itself only fetches uv.
$(RUN_STAMP): pyproject.toml
	@echo "Installing what running needs into $(VENV) (once)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(BIN)/uv pip install --python $(BIN)/python -e .
	touch $@

$(DEV_STAMP): $(RUN_STAMP)
	@echo "Installing the test and lint tools into $(VENV) (once)..."
	$(BIN)/uv pip install --python $(BIN)/python -e '.[dev]'
	touch $@

$(BENCH_STAMP): $(DEV_STAMP)
	$(BIN)/uv pip install --python $(BIN)/python -e '.[dev,bench]'
	touch $@

# The dashboard with demo agents, on the embedded store: no Redis server and no API key needed.
# Pick the port with: make demo DEMO_ARGS="--port 9000"   (every option: .venv/bin/approvals demo --help)
demo: $(RUN_STAMP)
	$(BIN)/approvals demo $(DEMO_ARGS)

# The suite needs a real redis-server binary (it starts its own on a free port unless REDIS_URL is set).
redis-server:
	@command -v redis-server >/dev/null || [ -n "$$REDIS_URL" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (apt-get install redis-server, brew install redis) or set REDIS_URL" >&2; \
	    exit 1; \
	  fi; }

# The browser test drives Debian's chromium through playwright (never a downloaded browser).
browser:
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install it (apt-get install chromium) for the browser test" >&2; \
	    exit 1; \
	  fi; }

test: $(DEV_STAMP) redis-server browser
	REQUIRE_REAL_REDIS=1 REQUIRE_BROWSER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every benchmark, each printing its figures and PASS/FAIL against its targets (see README).
bench: $(BENCH_STAMP) redis-server
	$(BIN)/python bench/asks.py
	$(BIN)/python bench/waiters.py
	$(BIN)/python bench/vs_smolagents.py
	$(BIN)/python bench/agents.py --skip-threads
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/notify.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
