# Countersign: `make run` and `make test` work on a fresh machine; each installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
FIXTURES := fixtures
VENV := $(FIXTURES)/.venv
PY := $(VENV)/bin/python
BIN := target/debug/countersign
DEMO := .demo

APP_APT := libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev pkg-config build-essential
DESKTOP_APT := xvfb xauth dbus-x11 webkit2gtk-driver dunst
# The real Secret Service the vault's tests use (scripts/keyring-session.sh), and GLib's
# `gio`, through which sign-in pages open in the desktop's browser.
KEYRING_APT := gnome-keyring dbus libglib2.0-bin
# The browser the IT console's end-to-end tests drive (playwright-core, tests/console).
CONSOLE_APT := chromium
TAURI_DRIVER_VERSION := 2.1.0
TAURI_DRIVER := $(HOME)/.cargo/bin/tauri-driver

.PHONY: help run app app-build test build console console-deps check-codemap fixtures keyring-deps bench-vault bench-peers bench-scale bench-durability soak cargo-fuzz test-fuzz fuzz test-rust test-e2e test-ui test-desktop desktop-deps ui bench bench-prompts bench-routed bench-console clean

help:
	@echo "make run    install what is missing, build, start the gateway with a demo config"
	@echo "make test   install what is missing, run every test"
	@echo "make bench  run the relay benchmark"
	@echo "make bench-prompts  prompts per 10 writes on recorded agent sessions (tests/bench_prompts)"
	@echo "make bench-routed   a routed approval's trips through the hub (long polls beside polling)"
	@echo "make bench-console  the IT console's audit search and impact preview on 1,000,000 records (PostgreSQL)"
	@echo "make bench-peers  Countersign beside npm and PyPI mcp-proxy (table and plot in BENCHMARKS.md)"
	@echo "make fuzz   run every fuzz target for FUZZ_SECONDS (default 600) each"
	@echo "make app    build and start the desktop app (Tauri)"

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

build: console
	$(CARGO) build --locked --bins

# The hub's IT console (console/): Svelte + Vite, built to console/dist, which the hub
# embeds at build time (crates/hub/build.rs).
console/node_modules/.stamp: console/package.json console/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

console: console/node_modules/.stamp
	cd console && npx vite build

tests/console/node_modules/.stamp: tests/console/package.json tests/console/package-lock.json
	cd tests/console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

console-deps:
	@missing=""; for p in $(CONSOLE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

run: fixtures build
	@scripts/demo.sh

test: fixtures build check-codemap test-rust test-e2e test-ui test-desktop test-fuzz

# ARCHITECTURE.md's crate graph and file map match the code; no two files import each other.
check-codemap:
	python3 scripts/check_codemap.py

# Fuzz targets beside the code they fuzz (crates/*/fuzz), each run for a bounded time
# from its committed corpus; `make fuzz FUZZ_SECONDS=600` for longer runs.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_SECONDS ?= 600
cargo-fuzz:
	@cargo fuzz --version 2>/dev/null | grep -q $(CARGO_FUZZ_VERSION) || $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)

test-fuzz: cargo-fuzz
	scripts/fuzz.sh 20

fuzz: cargo-fuzz
	scripts/fuzz.sh $(FUZZ_SECONDS)

keyring-deps:
	@missing=""; for p in $(KEYRING_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Both run inside a private D-Bus session with gnome-keyring unlocked: the vault's tests
# and the gateway's secrets use the real Secret Service.
test-rust: keyring-deps
	scripts/keyring-session.sh $(CARGO) test --locked

# The hub's tests also use a real PostgreSQL (scripts/postgres.sh installs and starts it).
test-e2e: keyring-deps console-deps tests/console/node_modules/.stamp
	COUNTERSIGN_TEST_POSTGRES=$$(scripts/postgres.sh) COUNTERSIGN_BIN=$(abspath $(BIN)) \
	  scripts/keyring-session.sh $(PY) -m pytest tests/e2e -q -p no:cacheprovider

# The desktop app: system libraries to build it, a headless desktop to test it.
desktop-deps:
	@missing=""; for p in $(APP_APT) $(DESKTOP_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@$(TAURI_DRIVER) --help >/dev/null 2>&1 && [ -f $(HOME)/.cargo/.tauri-driver-$(TAURI_DRIVER_VERSION) ] || \
	{ $(CARGO) install tauri-driver --version $(TAURI_DRIVER_VERSION) --locked && touch $(HOME)/.cargo/.tauri-driver-$(TAURI_DRIVER_VERSION); }

ui/node_modules/.stamp: ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ui: ui/node_modules/.stamp
	cd ui && npx vite build

test-ui: ui/node_modules/.stamp console/node_modules/.stamp
	cd ui && npx vitest run
	cd console && npx vitest run

app-build: desktop-deps ui
	$(CARGO) build --locked -p countersign-app

test-desktop: fixtures build app-build keyring-deps
	$(CARGO) test --locked -p countersign-app
	scripts/desktop-session.sh $(PY) -m pytest tests/desktop -q -p no:cacheprovider

app: fixtures build app-build
	target/debug/countersign-app

bench: fixtures keyring-deps
	$(CARGO) build --locked --release --bins
	$(CARGO) build --locked --release -p fast-upstream -p countersign-bench
	scripts/keyring-session.sh target/release/countersign-bench --gateway target/release/countersign --upstream target/release/fast-upstream
	COUNTERSIGN_TEST_POSTGRES=$$(scripts/postgres.sh) target/release/countersign-hub-bench --hub target/release/countersign-hub

# How often a person is asked: recorded agent sessions replayed through the gateway with a
# scripted person (tests/bench_prompts/bench.py); writes target/bench-prompts.json.
bench-prompts: fixtures build keyring-deps
	COUNTERSIGN_BIN=$(CURDIR)/$(BIN) scripts/keyring-session.sh $(PY) tests/bench_prompts/bench.py --json target/bench-prompts.json

# How fast a routed approval travels through the hub: long polls beside polling each
# second, one run (tests/e2e/bench_routed.py; not part of `make test`).
# The IT console's figures: a release hub on PostgreSQL with 1,000,000 seeded records.
bench-console: fixtures keyring-deps
	$(CARGO) build --locked --release -p countersign-hub
	COUNTERSIGN_TEST_POSTGRES=$$(scripts/postgres.sh) $(PY) tests/e2e/bench_console.py

bench-routed: fixtures build keyring-deps
	COUNTERSIGN_BIN=$(CURDIR)/$(BIN) scripts/keyring-session.sh $(PY) -m pytest tests/e2e/bench_routed.py -q -s -p no:cacheprovider

# What the vault adds per secret read and per request's bearer (criterion, real keychain).
# Countersign beside npm and PyPI `mcp-proxy` (pinned in fixtures/peers and
# fixtures/requirements-peers.txt, their own virtualenv), same upstreams and workload;
# writes the table and plot into BENCHMARKS.md.
PEERS_VENV := $(FIXTURES)/.venv-peers
$(FIXTURES)/.stamp-peers: $(FIXTURES)/peers/package.json $(FIXTURES)/peers/package-lock.json $(FIXTURES)/requirements-peers.txt
	cd $(FIXTURES)/peers && npm ci --no-audit --no-fund --loglevel=error
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --disable-pip-version-check -r $(FIXTURES)/requirements-peers.txt
	touch $@

bench-peers: fixtures keyring-deps $(FIXTURES)/.stamp-peers
	$(CARGO) build --locked --release --bins -p countersign-cli -p fast-upstream -p countersign-bench
	scripts/keyring-session.sh target/release/countersign-peers --gateway target/release/countersign \
	  --fast target/release/fast-upstream --everything $(FIXTURES)/node_modules/.bin/mcp-server-everything \
	  --npm-proxy $(FIXTURES)/peers/node_modules/.bin/mcp-proxy --py-proxy $(PEERS_VENV)/bin/mcp-proxy \
	  --out target/bench/peers.json
	$(PEERS_VENV)/bin/python scripts/peers_report.py target/bench/peers.json

# 100 servers / 5,000 tools on the aggregate endpoint against one server with 5,000, and
# 200 sessions at once.
bench-scale: fixtures keyring-deps
	$(CARGO) build --locked --release --bins -p countersign-cli -p fast-upstream -p countersign-bench
	scripts/keyring-session.sh target/release/countersign-scale --gateway target/release/countersign \
	  --fast target/release/fast-upstream

# Case 23 twenty times: kill -9 at a random point of 10,000 calls; records lost and the
# chain's verification per trial.
bench-durability: fixtures build keyring-deps
	mkdir -p target/bench && rm -f target/bench/kill9.jsonl
	COUNTERSIGN_KILL_TRIALS=20 COUNTERSIGN_KILL_REPORT=$(abspath target/bench/kill9.jsonl) COUNTERSIGN_BIN=$(abspath $(BIN)) \
	  scripts/keyring-session.sh $(PY) -m pytest tests/e2e/test_audit.py -k sec_23 -q -p no:cacheprovider
	@python3 -c "import json; t=[json.loads(l) for l in open('target/bench/kill9.jsonl')]; \
	  print(len(t), 'trials; records lost:', sum(x['lost'] for x in t), '; chain verified in', sum(x['chain_holds'] for x in t))"

# The soak test for 30 minutes (60 s of it runs in `make test`).
SOAK_SECONDS ?= 1800
soak: fixtures build keyring-deps
	mkdir -p target/bench
	COUNTERSIGN_SOAK_SECONDS=$(SOAK_SECONDS) COUNTERSIGN_SOAK_REPORT=$(abspath target/bench/soak.json) COUNTERSIGN_BIN=$(abspath $(BIN)) \
	  scripts/keyring-session.sh $(PY) -m pytest tests/e2e/test_soak.py -q -p no:cacheprovider

bench-vault: keyring-deps
	scripts/keyring-session.sh $(CARGO) bench --locked -p countersign-vault --bench keychain -- --warm-up-time 1 --measurement-time 3

clean:
	$(CARGO) clean
	rm -rf $(FIXTURES)/node_modules $(VENV) $(FIXTURES)/.stamp-* $(DEMO) ui/node_modules ui/dist
