import json
import time

import pytest

from harness import HeartbeatFeeder, Replica, Stack

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
