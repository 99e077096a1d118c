# cdcache: the commands a user runs. See README.md.
REPLICAS ?= 2
STACK_DIR ?= .stack
BUILD ?= build
PYTEST ?= python3 -m pytest

.PHONY: all build deps restart stop logs observe failover reset-source rolling-restart test test-unit test-sanitize test-integration \
        test-e2e test-deploy test-postman postman api-check clean-reports check-consistency check-consistency-short bench bench-scaling \
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
	@REPLICAS=$(REPLICAS) LB_PORT=$${LB_PORT:-8080} AUTH=$(AUTH) CONFIG=$(CONFIG) scripts/stack.sh up $(STACK_DIR)
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
	@scripts/observe.sh down $(STACK_DIR)
	@scripts/stack.sh down $(STACK_DIR)

logs:
	@scripts/stack.sh logs $(STACK_DIR)

# Prometheus (Debian's binary, our own process) scraping every replica of the running stack and loading
# deploy/prometheus/alerts.yaml; prints its URL. Run again after make restart; make stop stops it. See
# scripts/observe.sh (PROMETHEUS_PORT_BASE, default 19090).
observe: deps
	@scripts/observe.sh up $(STACK_DIR)

# Operations on the running native stack (README, "Consistency guarantees"): promote the streaming standby
# that STANDBY=1 make restart started, or reset Debezium's source (new slot, offsets cleared).
failover:
	@scripts/stack.sh failover $(STACK_DIR)

reset-source:
	@scripts/stack.sh reset-source $(STACK_DIR)

# Restarts every replica of the running stack, one at a time, with no failed request through nginx
# (README, "Operations").
rolling-restart:
	@scripts/stack.sh rolling-restart $(STACK_DIR)

# Unit tests (plain and under ASan+UBSan and TSan), then integration tests against a throwaway
# PostgreSQL and Redis, then the end-to-end test on a throwaway full stack with Debezium Server (which
# includes the Postman collection run by newman, tests/e2e/test_postman.py: on that same stack, so make
# test starts no second one for it; test-postman is that test alone), the deployment checks, a short
# consistency-checker run, and a short instrumented pass of every fuzzer (fuzz-short).
test: deps build clean-reports test-unit test-sanitize test-integration test-e2e test-deploy check-consistency-short fuzz-short
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

# deploy/k8s (kubeconform -strict against Kubernetes' schemas) and compose.yaml (the Compose
# Specification's JSON schema), each with invalid inputs that must be rejected; the replica's ConfigMap
# through `cdcache check-config`. Tools and schemas: scripts/deploy-tools.sh, cached in ~/.cache/cdcache.
test-deploy: build
	@scripts/deps.sh deploy
	CDCACHE_BUILD=$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/deploy

# The Postman collection (postman/) run by newman (pinned, installed by scripts/deps.sh): test-postman on
# a throwaway full stack with Debezium Server and 2 replicas behind nginx, free ports, torn down after;
# postman against the stack `make restart` runs ($(STACK_DIR)/stack.env: CDCACHE_URL, and CDCACHE_TOKEN
# with AUTH=1). Both fail on any failed assertion.
test-postman: build
	CDCACHE_BUILD=$(BUILD) $(PYTEST) -q -p no:cacheprovider tests/e2e/test_postman.py

postman:
	@[ -f $(STACK_DIR)/stack.env ] || { echo "postman: no stack in $(STACK_DIR) (make restart first)" >&2; exit 1; }
	@. $(STACK_DIR)/stack.env && CDCACHE_TOKEN="$${CDCACHE_TOKEN:-}" scripts/postman.sh "$$CDCACHE_URL"

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

# docs/scaling.md's figures: stream fan-out to N consumer groups, Debezium's write rate, live replicas
# (bench/fanout.py, ~6 min), and a replica's RSS at its cache bound with deploy/k8s's config (bench/rss.py,
# ~3 min). Writes bench/results/fanout-<date>.json; prints the RSS figures.
bench-scaling: deps
	[ -f $(BUILD)-bench/build.ninja ] || meson setup $(BUILD)-bench --buildtype=release
	ninja -C $(BUILD)-bench
	BENCH_BUILD=$(BUILD)-bench python3 bench/fanout.py
	BENCH_BUILD=$(BUILD)-bench python3 bench/rss.py

# libFuzzer harnesses (needs clang) for the untrusted-input parsers and whole HTTP requests, one after
# the other, FUZZ_SECONDS each; prints the edges ("cov") each explored. -Dfuzz=true builds the core
# library with coverage instrumentation, so the edges are the parsers' and routes', not only the
# harness's. fuzz-short is the pass CI can afford (FUZZ_SHORT_SECONDS each). Both fail only on a
# crash, leak, hang or OOM (input in $(BUILD)-fuzz/artifacts/<harness>/). See tests/fuzz/run.sh.
FUZZ_HARNESSES = body debezium config http codec filter

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
