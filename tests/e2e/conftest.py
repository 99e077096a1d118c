import pytest

from harness import Stack, report


@pytest.fixture(scope="session")
def stack():
    # heartbeats every 200 ms (the default is 1 s) so they race a restart's backlog, as in production
    s = Stack(parts="pg redis debezium replicas nginx", replicas=2, env={"CDCACHE_HEARTBEAT_MS": "200"}).up()
    report("e2e", f"e2e: full stack up in {s.up_seconds:.1f}s; Debezium Server "
                  f"{open('debezium/VERSION').read().strip()} streaming {s.vars['DEBEZIUM_STARTUP_SECONDS']}s "
                  "after launch")
    yield s
    s.down()


@pytest.fixture(scope="session")
def replicas(stack):
    return stack.vars["REPLICA_URLS"].split(",")


@pytest.fixture(scope="session")
def lb(stack):
    return stack.vars["CDCACHE_URL"]
