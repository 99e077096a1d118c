import json
import time

import pytest

from harness import SHOP_SQL, HeartbeatFeeder, Replica, Stack
from shop import shop_replica_of

STREAM = "cdcache.inventory.items"


@pytest.fixture(scope="session")
def stack():
    s = Stack(parts="pg redis").up()
    yield s
    s.down()


@pytest.fixture(scope="session")
def heartbeats(stack):
    hb = HeartbeatFeeder(stack).start()
    yield hb
    hb.stop()


@pytest.fixture(scope="session")
def replica(stack, heartbeats):
    r = Replica(stack, "it-main").start()
    yield r
    r.stop()


def row_image(stack, item_id):
    """The row as Debezium's after-image carries it (ISO-8601 UTC, decimal as text)."""
    iso = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    out = stack.psql(
        "SELECT json_build_object('id', id, 'name', name, 'description', description, 'price', "
        f"price::text, 'created_at', {iso.format('created_at')}, 'updated_at', {iso.format('updated_at')}, "
        f"'version', version) FROM inventory.items WHERE id = {int(item_id)}")
    return json.loads(out) if out else None


def xadd_change(stack, item_id, op="u", after="row", before=None, key=None):
    """Appends a change entry in Debezium Server's compact Redis format."""
    now = int(time.time() * 1000)
    if after == "row":
        after = row_image(stack, item_id)
    value = {"before": before, "after": after,
             "source": {"version": "3.6.0.Final", "connector": "postgresql", "name": "cdcache",
                        "ts_ms": now, "schema": "inventory", "table": "items"},
             "op": op, "ts_ms": now, "transaction": None}
    k = json.dumps({"id": int(item_id)}) if key is None else key
    return stack.redis("XADD", STREAM, "*", k, json.dumps(value, separators=(",", ":")))



# ------------------------------------------------------------------ the second schema (issue 14)
# tests/schemas/shop.sql in the session's database, and replicas whose config declares
# tests/schemas/shop.yaml's resources (items, customers, orders); helpers in tests/pylib/shop.py.


@pytest.fixture(scope="session")
def shop_db(stack):
    """The stack with tests/schemas/shop.sql applied (idempotent)."""
    stack.psql_file(SHOP_SQL)
    return stack


@pytest.fixture(scope="session")
def shop_replica(shop_db, heartbeats):
    """A replica serving items, customers and orders (tests/schemas/shop.yaml)."""
    r = shop_replica_of(shop_db, "it-shop").start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def shop_replica_b(shop_db, heartbeats, shop_replica):
    """A second replica with the same resources: read-your-writes across replicas. No Debezium runs in
    the integration tests, so this replica sees no change event for another replica's writes: only the
    write's token can keep it from serving its older cached copy."""
    r = shop_replica_of(shop_db, "it-shop-b").start()
    yield r
    r.stop()
