"""End to end on the real stack: PostgreSQL -> Debezium Server -> Redis Streams -> 2 replicas -> nginx."""
import os
import random
import statistics
import string
import subprocess
import time

from harness import ROOT, metric, report, request, wait_until

STREAM = "cdcache.inventory.items"


def create(base, **fields):
    body = {"name": "e2e", "description": "d", "price": "5.00", **fields}
    r = request(base, "POST", "/items", body)
    assert r.status == 201, r
    return r.json()


def warm(base, item_id, timeout=30):
    """Reads until the replica serves the item from its cache (on a loaded machine a replica may be
    bypassing for a moment, until the pipeline vouches again)."""
    def hit():
        r = request(base, "GET", f"/items/{item_id}")
        return r if r.header("x-cache") == "hit" else None
    return wait_until(hit, timeout, interval=0.01, what=f"a cache hit of {item_id} on {base}")


def wait_version(base, item_id, version, timeout=30):
    """Polls until the replica serves `version` from its cache; returns (response, seconds)."""
    t0 = time.monotonic()

    def served():
        r = request(base, "GET", f"/items/{item_id}")
        return r if r.status == 200 and r.json()["version"] >= version and r.header("x-cache") == "hit" else None

    r = wait_until(served, timeout, interval=0.002, what=f"version {version} of {item_id} on {base}")
    return r, time.monotonic() - t0


def test_update_through_a_is_served_fresh_by_b(replicas):
    a, b = replicas[0], replicas[1]
    samples = []
    for _ in range(20):
        item = create(a)
        warm(b, item["id"])
        t0 = time.monotonic()
        r = request(a, "PATCH", f"/items/{item['id']}", {"price": "6.00"})
        assert r.status == 200 and r.header("etag") == '"2"'
        got, _ = wait_version(b, item["id"], 2)
        samples.append((time.monotonic() - t0) * 1000)
        assert got.json()["price"] == 6.0 and b'"price":6.00,' in got.body
    samples.sort()
    report("e2e", "e2e: write on replica A -> refreshed in replica B's cache (20 updates, polled every "
                  f"2 ms): p50 {statistics.median(samples):.0f} ms, max {samples[-1]:.0f} ms")


def test_plain_sql_update_and_delete_reach_every_replica(stack, replicas):
    item = create(replicas[0])
    for base in replicas:
        warm(base, item["id"])
    stack.psql(f"UPDATE inventory.items SET name = 'set by sql' WHERE id = {item['id']}")
    for base in replicas:
        got, _ = wait_version(base, item["id"], 2)
        assert got.json()["name"] == "set by sql"
        fresh = request(base, "GET", f"/items/{item['id']}", headers={"Cache-Control": "no-cache"})
        assert fresh.header("x-cache") == "bypass"
        assert got.body == fresh.body, "the after-image renders the same bytes as the query row"
    stack.psql(f"DELETE FROM inventory.items WHERE id = {item['id']}")
    for base in replicas:
        wait_until(lambda: request(base, "GET", f"/items/{item['id']}").status == 404, 30,
                   what="delete to reach " + base)


def test_tombstones_and_malformed_entries_do_not_stop_consumers(stack, replicas):
    before = [metric(b, "cdcache_cdc_events_poison_total") for b in replicas]
    tomb = [metric(b, 'cdcache_cdc_events_total{result="tombstone"}') for b in replicas]
    stack.redis("XADD", STREAM, "*", "not a key", "not a value")
    stack.redis("XADD", STREAM, "*", '{"id":1}', '{"op":"u","after":{"id":1,"price":12}}')
    victim = create(replicas[0])
    stack.psql(f"DELETE FROM inventory.items WHERE id = {victim['id']}")  # Debezium adds a tombstone
    item = create(replicas[0])
    for base in replicas:
        warm(base, item["id"])
    stack.psql(f"UPDATE inventory.items SET price = 7.25 WHERE id = {item['id']}")
    for i, base in enumerate(replicas):
        got, _ = wait_version(base, item["id"], 2)
        assert b'"price":7.25,' in got.body
        assert metric(base, "cdcache_cdc_events_poison_total") >= before[i] + 2
        wait_until(lambda: metric(base, 'cdcache_cdc_events_total{result="tombstone"}') > tomb[i], 30,
                   what="the real tombstone")


def test_unchanged_toasted_description_evicts_instead_of_refreshing(stack, replicas):
    rng = random.Random(3)  # incompressible, so PostgreSQL stores it out of line (TOAST)
    big = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12000))
    item = create(replicas[0], description=big)
    for base in replicas:
        warm(base, item["id"])
    incomplete = [metric(b, 'cdcache_cdc_events_total{result="incomplete"}') for b in replicas]
    stack.psql(f"UPDATE inventory.items SET price = 8.00 WHERE id = {item['id']}")
    for i, base in enumerate(replicas):
        wait_until(lambda: metric(base, 'cdcache_cdc_events_total{result="incomplete"}') > incomplete[i], 30,
                   what="the placeholder after-image")
        r = request(base, "GET", f"/items/{item['id']}")
        assert r.header("x-cache") == "miss" and r.json()["version"] == 2
        assert r.json()["description"] == big, "never the placeholder"


def test_truncate_flushes_every_replica(stack, replicas):
    item = create(replicas[0])
    for base in replicas:
        warm(base, item["id"])
    flushes = [metric(b, "cdcache_cache_flushes_total") for b in replicas]
    stack.psql("TRUNCATE inventory.items")
    for i, base in enumerate(replicas):
        wait_until(lambda: metric(base, "cdcache_cache_flushes_total") > flushes[i], 30, what="flush")
        assert request(base, "GET", f"/items/{item['id']}").status == 404


def test_seed_postman_requests_through_the_load_balancer(lb):
    created = request(lb, "PUT", "/items", '{"name":"init","description":"init description","price":12.34}',
                      {"Content-Type": "application/json"})
    assert created.status == 201, created
    item = created.json()
    assert item["name"] == "init" and b'"price":12.34,' in created.body
    got = request(lb, "GET", f"/items/{item['id']}")
    assert got.status == 200 and got.json()["id"] == item["id"]
    updated = request(lb, "PUT", "/items", {"id": str(item["id"]), "name": "init",
                                            "description": "updated description", "price": 12.34})
    assert updated.status == 200 and updated.json()["version"] == 2
    listed = request(lb, "GET", "/items").json()
    assert any(i["id"] == item["id"] for i in listed["items"])
    # read-your-writes through the balancer: whichever replica answers, the write is there
    for _ in range(10):
        r = request(lb, "GET", f"/items/{item['id']}", headers={"X-Min-Version": "2"})
        assert r.json()["description"] == "updated description"
    assert request(lb, "DELETE", f"/items/{item['id']}").status == 204
    for _ in range(4):  # the database answers at once on any replica...
        r = request(lb, "GET", f"/items/{item['id']}", headers={"Cache-Control": "no-cache"})
        assert r.status == 404
    # ...and the delete's change event evicts every replica's copy
    wait_until(lambda: all(request(lb, "GET", f"/items/{item['id']}").status == 404 for _ in range(4)), 30,
               what="the delete to reach both replicas")


def test_every_replica_reports_ready(replicas):
    for base in replicas:
        r = request(base, "GET", "/ready")
        assert r.status == 200, r
        body = r.json()
        assert body["checks"]["cdc"]["attached"] and body["checks"]["cdc"]["lag_ms"] < 5000
        assert metric(base, "cdcache_cdc_heartbeats_total") > 0


def test_fresh_database_resets_debezium_offsets(stack):
    """Runs last: recreating the database must reset Debezium's offsets (kept in Redis), or Debezium would
    resume from a position in a WAL that no longer exists. The stack's own probe then proves that a
    change flows end to end again, and so does a plain SQL update afterwards."""
    stack.redis("HSET", "metadata:debezium:offsets", "marker", "from the old database")
    r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", stack.dir],
                       env=dict(stack.env, FRESH="1"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Debezium offsets and old streams reset" in r.stderr
    assert "new database" in r.stderr
    stack.load_env()
    assert stack.redis("HGET", "metadata:debezium:offsets", "marker") == ""
    replicas = stack.vars["REPLICA_URLS"].split(",")
    item = create(replicas[0])
    assert item["id"] == 1, "a new database starts its ids again"
    for base in replicas:
        warm(base, item["id"])
    stack.psql("UPDATE inventory.items SET name = 'after reset' WHERE id = 1")
    for base in replicas:
        got, _ = wait_version(base, 1, 2)
        assert got.json()["name"] == "after reset"
