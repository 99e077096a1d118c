# cdcache: the commands a user runs. See README.md.
REPLICAS ?= 2
STACK_DIR ?= .stack
BUILD ?= build
PYTEST ?= python3 -m pytest

.PHONY: all build deps restart stop logs failover reset-source test test-unit test-sanitize test-integration test-e2e api-check \
        clean-reports check-consistency check-consistency-short bench \
        check-config fuzz fuzz-build fuzz-short format format-check clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) $(if $(CI),-Dwerror_ci=true,)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# (Re)starts the whole native stack under $(STACK_DIR), nginx on port 8080, every part under supervisord
# (a part that dies is started again by itself). AUTH=1: writes need the bearer token it prints (made once
# per folder, kept in $(STACK_DIR)/secrets.env, CDCACHE_TOKEN in stack.env); without it writes are open.
restart: deps build
	@REPLICAS=$(REPLICAS) LB_PORT=$${LB_PORT:-8080} AUTH=$(AUTH) scripts/stack.sh up $(STACK_DIR)
	@. $(STACK_DIR)/stack.env && echo && \
	  echo "cdcache is up: $$CDCACHE_URL  (replicas: $$REPLICA_URLS)" && \
	  echo "  try:  curl -s $$CDCACHE_URL/items/1" && \
	  if [ -n "$${CDCACHE_TOKEN:-}" ]; then \
	    echo "  writes need the token (AUTH=1): $$CDCACHE_TOKEN" && \
	    echo "        curl -s -X POST $$CDCACHE_URL/items -H \"Authorization: Bearer \$$CDCACHE_TOKEN\" -d '{\"name\":\"a\",\"description\":\"b\",\"price\":1}'"; \
	  fi && \
	  echo "  env:  . $(STACK_DIR)/stack.env    logs: make logs    stop: make stop" && \
	  echo "  supervisor: supervisorctl -c $$SUPERVISOR_CONF status"

stop:
	@scripts/stack.sh down $(STACK_DIR)

logs:
	@scripts/stack.sh logs $(STACK_DIR)

# Operations on the running native stack (README, "Consistency guarantees"): promote the streaming standby
# that STANDBY=1 make restart started, or reset Debezium's source (new slot, offsets cleared).
failover:
	@scripts/stack.sh failover $(STACK_DIR)

reset-source:
	@scripts/stack.sh reset-source $(STACK_DIR)

# Unit tests (plain and under ASan+UBSan and TSan), then integration tests against a throwaway
# PostgreSQL and Redis, then the end-to-end test on a throwaway full stack with Debezium Server, a short
# consistency-checker run, and a short instrumented pass of every fuzzer (fuzz-short).
test: deps build clean-reports test-unit test-sanitize test-integration test-e2e check-consistency-short fuzz-short
	@cat $(BUILD)/test-reports/*.txt 2>/dev/null || true

clean-reports:
	@rm -rf $(BUILD)/test-reports

test-unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

test-sanitize:
	@scripts/deps.sh build
	[ -f $(BUILD)-asan/build.ninja ] || meson setup $(BUILD)-asan -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(BUILD)-asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C $(BUILD)-asan --suite unit --print-errorlogs
	[ -f $(BUILD)-tsan/build.ninja ] || meson setup $(BUILD)-tsan -Db_sanitize=thread -Db_lundef=false
	ninja -C $(BUILD)-tsan
	TSAN_OPTIONS=halt_on_error=1 meson test -C $(BUILD)-tsan --suite stress --print-errorlogs

test-integration: build
	CDCACHE_BUILD=$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/integration

# openapi.yaml: Redocly's lint and Schemathesis against a throwaway replica (tests/integration/test_openapi.py,
# also part of test-integration). The tools are pinned in scripts/api-tools.sh.
api-check: build
	CDCACHE_BUILD=$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/integration/test_openapi.py

test-e2e: build
	CDCACHE_BUILD=$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/e2e

# The consistency checker (tests/consistency/checker.py) on its own throwaway stack with 3 replicas.
# READS=1000000 FAULTS=all for the long run (FAULTS=kills or 1: only kills; or a comma list of
# redis,partition,debezium,source-reset,replica,pg-restart,pause); the short run is part of make test.
check-consistency: build deps
	python3 tests/consistency/checker.py --reads $${READS:-100000} --seed $${SEED:-7} $(if $(FAULTS),--faults $(patsubst 1,kills,$(FAULTS)),)

check-consistency-short: build
	python3 tests/consistency/checker.py --reads 20000 --seed 7 --report $(BUILD)/test-reports/consistency.txt

# Benchmarks (bench/run.py): an optimised build in $(BUILD)-bench, a throwaway stack, a report in
# bench/results/<date>.md. BENCH_QUICK=1 for a short pass. Reports; never fails on a figure.
bench: deps
	[ -f $(BUILD)-bench/build.ninja ] || meson setup $(BUILD)-bench --buildtype=release
	ninja -C $(BUILD)-bench
	BENCH_BUILD=$(BUILD)-bench python3 bench/run.py

# libFuzzer harnesses (needs clang) for the untrusted-input parsers and whole HTTP requests, one after
# the other, FUZZ_SECONDS each; prints the edges ("cov") each explored. -Dfuzz=true builds the core
# library with coverage instrumentation, so the edges are the parsers' and routes', not only the
# harness's. fuzz-short is the pass CI can afford (FUZZ_SHORT_SECONDS each). Both fail only on a
# crash, leak, hang or OOM (input in $(BUILD)-fuzz/artifacts/<harness>/). See tests/fuzz/run.sh.
FUZZ_HARNESSES = body debezium config http

fuzz-build:
	@scripts/deps.sh
	[ -f $(BUILD)-fuzz/build.ninja ] || CC=clang meson setup $(BUILD)-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(BUILD)-fuzz $(addprefix tests/fuzz/fuzz_,$(FUZZ_HARNESSES))

fuzz: fuzz-build
	tests/fuzz/run.sh $(BUILD)-fuzz $${FUZZ_SECONDS:-30} $(FUZZ_HARNESSES)

fuzz-short: fuzz-build
	tests/fuzz/run.sh $(BUILD)-fuzz $${FUZZ_SHORT_SECONDS:-10} $(FUZZ_HARNESSES)

format:
	clang-format -i src/*.c include/cdcache/*.h tests/*.c tests/*.h tests/fuzz/*.c bench/*.c

format-check: deps
	clang-format --dry-run --Werror src/*.c include/cdcache/*.h tests/*.c tests/*.h tests/fuzz/*.c bench/*.c

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz $(BUILD)-bench
