# chat-server: build, run and test.
#
#   make serve    build the release binary and run it on config.json
#   make test     prepare what the tests need (.venv, npm packages), run the tests, build
#                 the benches
#   make check    rustfmt check, clippy with warnings as errors, then make test
#   make checkin  format, lint, test, then show the change for review
#
# Plain POSIX make syntax (no GNU extensions), tested with GNU make 4.3.

.POSIX:

CARGO = cargo
VENV = .venv
TEST_REQUIREMENTS = scripts/test-requirements.txt
CONFIG = config.json
BIN = ./target/release/chat-server
# In CI (CI set) a Cargo.lock that does not match Cargo.toml is an error; locally cargo
# updates it, and the change is committed with Cargo.toml.
LOCKED = $${CI:+--locked}

build:
	$(CARGO) build --release --locked

serve: build
	$(BIN) -c $(CONFIG)

# The tests find the Python tools (websockets, schemathesis) through CHAT_TEST_VENV.
test: venv browser-deps
	CHAT_TEST_VENV="$$(pwd)/$(VENV)" $(CARGO) test $(LOCKED)
	$(CARGO) bench $(LOCKED) --no-run

# Each does nothing when already done; each skips loudly when python3 / npm is missing.
venv:
	@sh scripts/ensure-venv.sh $(VENV) $(TEST_REQUIREMENTS)

browser-deps:
	@sh scripts/ensure-browser-deps.sh tests/browser

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy $(LOCKED) --all-targets -- -D warnings

check: fmt-check lint
	$(MAKE) test

checkin: fmt
	$(MAKE) lint
	$(MAKE) test
	@echo "=== the change against HEAD ==="
	git --no-pager status --short
	git --no-pager diff --stat HEAD
	git --no-pager diff HEAD
	@if command -v duplicates >/dev/null 2>&1; then \
		echo "=== code this change repeats (duplicates --change) ==="; \
		duplicates --change; \
	fi

# The load-generator benchmarks against the baselines; writes BENCHMARKS.md (about 25
# minutes; `bash scripts/bench.sh --quick` takes about 4). The criterion micro-benchmarks are
# `cargo bench`.
bench:
	bash scripts/bench.sh

# Several chat-server processes sharing one chat through their own redis-server, against one
# process at the same load: order, loss, p99 per node, Redis CPU and appends; writes
# BENCHMARKS-cluster.md (about 1 minute after the build; node count and CPU sets: see
# `bash scripts/bench-cluster.sh --help`).
bench-cluster:
	bash scripts/bench-cluster.sh

# Every cargo-fuzz target for FUZZ_RUNS executions (default 1,000,000 each).
fuzz:
	sh scripts/fuzz.sh

# Removes build outputs and what `make test` installed; the chat log is left alone.
clean:
	$(CARGO) clean
	rm -rf $(VENV) tests/browser/node_modules

.PHONY: build serve test venv browser-deps fmt fmt-check lint check checkin bench bench-cluster fuzz \
	clean
