"""Helpers for the second real schema (tests/schemas/shop.sql, declared by tests/schemas/shop.yaml): shop
replicas for the integration tests and change entries for the shop tables' streams. Test modules import
these from here (tests/pylib is on sys.path), not from a conftest, so that the integration and end-to-end
test_resources.py modules can be collected in one pytest run."""
import json
import time

from harness import SHOP_YAML, Replica, resources_yaml

# Debezium's stream of each table: <topic prefix>.<schema>.<table>
ITEMS_STREAM = "cdcache.inventory.items"
CUSTOMERS_STREAM = "cdcache.shop.customers"
ORDERS_STREAM = "cdcache.shop.orders"


def shop_replica_of(stack, replica_id, resources=None, **kw):
    """A replica (not started) declaring shop.yaml's resources (or `resources`: YAML text or a list of
    dicts), after `cdcache prepare --apply` for them."""
    r = Replica(stack, replica_id, resources=resources_yaml(SHOP_YAML) if resources is None else resources,
                **kw)
    r.prepare()
    return r


def xadd_event(stack, stream, schema, table, key, op, after=None, before=None):
    """Appends a change entry in Debezium Server's compact Redis format to a table's stream; key is the
    key's JSON object (e.g. {"id": "<uuid>"}), or None for a keyless entry (a truncate), which Debezium
    Server writes as the string "default"."""
    now = int(time.time() * 1000)
    value = {"before": before, "after": after,
             "source": {"version": "3.6.0.Final", "connector": "postgresql", "name": "cdcache",
                        "ts_ms": now, "schema": schema, "table": table},
             "op": op, "ts_ms": now, "transaction": None}
    k = "default" if key is None else json.dumps(key, separators=(",", ":"))
    return stack.redis("XADD", stream, "*", k, json.dumps(value, separators=(",", ":")))
