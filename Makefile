# Countersign: `make run` and `make test` work on a fresh machine; each installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
FIXTURES := fixtures
VENV := $(FIXTURES)/.venv
PY := $(VENV)/bin/python
BIN := target/debug/countersign
DEMO := .demo

.PHONY: help run test build fixtures test-rust test-e2e bench clean

help:
	@echo "make run    install what is missing, build, start the gateway with a demo config"
	@echo "make test   install what is missing, run every test"
	@echo "make bench  run the relay benchmark"

# Pinned third-party MCP servers and the Python MCP client (see fixtures/README.md).
fixtures: $(FIXTURES)/.stamp-npm $(FIXTURES)/.stamp-pip
	@command -v ps >/dev/null && command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq procps git; }

$(FIXTURES)/.stamp-npm: $(FIXTURES)/package.json $(FIXTURES)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd $(FIXTURES) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FIXTURES)/.stamp-pip: $(FIXTURES)/requirements.txt
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r $(FIXTURES)/requirements.txt
	touch $@

build:
	$(CARGO) build --locked --workspace --bins

run: fixtures build
	@scripts/demo.sh

test: fixtures build test-rust test-e2e

test-rust:
	$(CARGO) test --locked --workspace

test-e2e:
	COUNTERSIGN_BIN=$(abspath $(BIN)) $(PY) -m pytest tests/e2e -q -p no:cacheprovider

bench: fixtures
	$(CARGO) build --locked --release --workspace --bins
	$(CARGO) build --locked --release -p fast-upstream -p countersign-bench
	target/release/countersign-bench --gateway target/release/countersign --upstream target/release/fast-upstream

clean:
	$(CARGO) clean
	rm -rf $(FIXTURES)/node_modules $(VENV) $(FIXTURES)/.stamp-* $(DEMO)
