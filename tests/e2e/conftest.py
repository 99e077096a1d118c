import os

import pytest

from harness import SHOP_SQL, SHOP_YAML, Stack, report

# The shared end-to-end stack declares the second schema too (issue 14): tests/schemas/shop.sql is created
# in its database once PostgreSQL is up, then every part starts with CONFIG=tests/schemas/shop.yaml (items,
# customers, orders), as a user runs `psql -f shop.sql` and then `CONFIG=... make restart`. So make test
# starts one full stack for the items tests and the shop tests (tests/e2e/test_resources.py).
# CDCACHE_E2E_SHOP=0 starts today's stack (items only); the shop tests then declare shop on it (a restart).
SHOP_BY_DEFAULT = os.environ.get("CDCACHE_E2E_SHOP", "1") != "0"

# Recreates the database (FRESH=1): the declared shop tables are gone afterwards, so it runs last and
# on today's stack (see _fresh_database_forgets_the_declared_tables).
FRESH_TEST = "test_fresh_database_resets_debezium_offsets"


@pytest.fixture(scope="session")
def stack():
    # heartbeats every 200 ms (the default is 1 s) so they race a restart's backlog, as in production
    shop = dict(config=SHOP_YAML, sql_files=[SHOP_SQL]) if SHOP_BY_DEFAULT else {}
    s = Stack(parts="pg redis debezium replicas nginx", replicas=2, env={"CDCACHE_HEARTBEAT_MS": "200"},
              **shop).up()
    report("e2e", f"e2e: full stack up in {s.up_seconds:.1f}s; Debezium Server "
                  f"{open('debezium/VERSION').read().strip()} streaming {s.vars['DEBEZIUM_STARTUP_SECONDS']}s "
                  f"after launch{'; resources items, customers, orders (tests/schemas/shop.yaml)' if shop else ''}")
    yield s
    s.down()


@pytest.fixture(scope="session")
def replicas(stack):
    return stack.vars["REPLICA_URLS"].split(",")


@pytest.fixture(scope="session")
def lb(stack):
    return stack.vars["CDCACHE_URL"]


@pytest.fixture
def shop(stack):
    """The shared stack with the shop tables created and declared (tests/schemas/shop.yaml): replicas
    serve /items, /customers and /orders and Debezium captures the three tables. Declares them (a
    restart) only when the stack was started without them (CDCACHE_E2E_SHOP=0) or lost them (a new
    database)."""
    if stack.config != os.path.abspath(SHOP_YAML) or \
            stack.psql("SELECT to_regclass('shop.customers') IS NOT NULL") != "t":
        stack.declare(SHOP_YAML, [SHOP_SQL])
    return stack


@pytest.fixture(autouse=True)
def _fresh_database_forgets_the_declared_tables(request):
    """A new database (FRESH=1) has no shop tables: the stack must come up again without CONFIG, or it
    would refuse resources whose tables do not exist. Before the test that recreates the database, the
    shared stack forgets CONFIG (it is restarted within that test)."""
    if request.node.name == FRESH_TEST:
        request.getfixturevalue("stack").undeclare()
    yield


def pytest_collection_modifyitems(session, config, items):
    """The test that recreates the database runs after every other end-to-end test (its docstring says it
    runs last), so the shop tests that follow test_pipeline.py still find their tables and no second
    restart is needed."""
    fresh = [i for i in items if i.name == FRESH_TEST]
    if fresh:
        items[:] = [i for i in items if i.name != FRESH_TEST] + fresh
