# The two commands of the README: `make run` and `make test`. Each creates .venv if
# missing and installs the project into it (again only when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run install test lint format bench clean browser

# The whole daily job on the configured inbox (seeds/ by default): fetch (when enabled),
# ingest, build, publish, email. RUN_ARGS passes options, e.g. RUN_ARGS="--send".
run: $(STAMP)
	$(BIN)/digest run $(RUN_ARGS)

# Only the install: .venv with the package, after which `.venv/bin/digest` is the command.
# The publish workflow installs this way and runs `.venv/bin/digest run` itself, so that
# the exit code it sees is digest's own (make reports every failing recipe as 2).
install: $(STAMP)

test: $(TEST_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	DIGEST_REQUIRE_SEMANTIC=1 $(BIN)/pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(TEST_STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/rank.py
	$(BIN)/python bench/build.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/scale.py

# The browser tests drive the system's Chromium (Playwright downloads nothing). Use one
# that is already there (CI runners have Google Chrome); install Debian's only if none is.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	echo "no Chromium found: installing Debian's chromium"; \
	if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "paper-digest needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs the package and the web extra (so `digest serve` serves the web side); `make test`
# adds the test tools, the semantic extra and the cluster extra (the Dask tests start a real local cluster).
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[web]'
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test,semantic,web,cluster]'
	touch $(STAMP) $(TEST_STAMP)

clean:
	rm -rf $(VENV) .digest site outbox digests .pytest_cache .ruff_cache .mypy_cache
