# facefleet: one-command install, run and test (README.md, "The two commands").
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test browser systemd weights run up down status test lint bench clean

install: $(STAMP)

# Re-runs only when a requirements file changes. facenet-pytorch goes in last with
# --no-deps: its metadata pins torch<2.3 and numpy<2, which would pull another torch.
$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

install-test: $(TEST_STAMP) browser systemd

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

# Debian's Chromium drives the browser tests (playwright-core never downloads one here).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'; }

# Debian's systemd package brings systemd-analyze, which verifies the instances' units.
systemd:
	@command -v systemd-analyze >/dev/null || { \
	  echo "installing Debian's systemd for systemd-analyze (unit verification)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null'; }

# Obtain, convert and verify the default offline weights into the local cache.
weights: install
	$(BIN)/python -m recognition weights

run: weights
	$(BIN)/python -m deploy.stack run

up: weights
	$(BIN)/python -m deploy.stack up

down:
	$(BIN)/python -m deploy.stack down

status:
	$(BIN)/python -m deploy.stack status

test: install-test weights
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
