# Everything a fresh clone needs: `make demo` and `make test`, each creating .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench redis-server browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The dashboard with demo agents, on the embedded store: no Redis server and no API key needed.
demo: $(STAMP)
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

test: $(STAMP) redis-server browser
	REQUIRE_REAL_REDIS=1 REQUIRE_BROWSER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) redis-server
	$(BIN)/python bench/waiters.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
