"""The consistency guarantees against a real PostgreSQL and Redis, each test forcing its race or fault.
Change entries are written in Debezium Server's format (the end-to-end tests use the real thing)."""
import concurrent.futures
import json
import os
import tempfile
import threading

from conftest import STREAM, row_image, xadd_change
from harness import Replica, request, wait_until


def sql_insert(stack, name="cold", item_id=None):
    cols = "(id, name, description, price)" if item_id else "(name, description, price)"
    vals = f"({item_id}, '{name}', 'd', 1.00)" if item_id else f"('{name}', 'd', 1.00)"
    return int(stack.psql(f"INSERT INTO inventory.items {cols} VALUES {vals} RETURNING id").splitlines()[0])


def test_no_stale_fill_when_a_change_lands_during_the_fill(stack, heartbeats):
    """Guarantee 1. The read misses and queries PostgreSQL (version 1); the fill is held at a gate while
    the row is updated and its change entry applied; then the fill runs. It must be refused."""
    gate = tempfile.mkdtemp(prefix="cdcache-gate-")
    r = Replica(stack, "it-gate", env={"CDCACHE_TEST_FILL_GATE": gate}).start()
    try:
        item = sql_insert(stack)
        open(os.path.join(gate, str(item)), "w").close()
        result = {}
        t = threading.Thread(target=lambda: result.update(r=r.get(f"/items/{item}")))
        t.start()
        wait_until(lambda: os.path.exists(os.path.join(gate, f"{item}.waiting")), what="the fill to pause")
        applied = r.metric('cdcache_cdc_events_total{result="evicted"}')
        stack.psql(f"UPDATE inventory.items SET name = 'newer' WHERE id = {item}")
        xadd_change(stack, item)
        wait_until(lambda: r.metric('cdcache_cdc_events_total{result="evicted"}') > applied,
                   what="the change to be applied while the fill waits")
        void = r.metric('cdcache_cache_fill_rejections_total{reason="lease_void"}')
        os.unlink(os.path.join(gate, str(item)))
        t.join(30)
        assert result["r"].json()["version"] == 1, "that read began before the update"
        assert r.metric('cdcache_cache_fill_rejections_total{reason="lease_void"}') == void + 1
        after = r.get(f"/items/{item}")
        assert after.json()["version"] == 2 and after.header("x-cache") == "miss", \
            "the older row was not installed"
    finally:
        r.stop()


def test_stampede_on_a_cold_key_makes_one_query(stack, heartbeats):
    gate = tempfile.mkdtemp(prefix="cdcache-gate-")
    r = Replica(stack, "it-stampede", env={"CDCACHE_TEST_FILL_GATE": gate, "CDCACHE_HTTP_THREADS": "256",
                                           "CDCACHE_CACHE_FILL_WAIT_MS": "30000"}).start()
    try:
        item = sql_insert(stack, "stampede")
        open(os.path.join(gate, str(item)), "w").close()
        before = r.metric('cdcache_db_queries_total{statement="get"}')
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            futures = [pool.submit(r.get, f"/items/{item}") for _ in range(200)]
            wait_until(lambda: os.path.exists(os.path.join(gate, f"{item}.waiting")), what="first fill")
            # the other 199 misses pile up behind the one lease
            wait_until(lambda: r.metric("cdcache_cache_fill_waits_total") >= 199, what="waiters")
            os.unlink(os.path.join(gate, str(item)))
            results = [f.result() for f in futures]
        assert all(x.status == 200 for x in results)
        assert len({x.body for x in results}) == 1
        assert r.metric('cdcache_db_queries_total{statement="get"}') - before == 1, "one query for 200 misses"
    finally:
        r.stop()


def test_negative_entry_is_replaced_by_a_reinsert(replica, stack):
    item = sql_insert(stack)
    stack.psql(f"DELETE FROM inventory.items WHERE id = {item}")
    assert replica.get(f"/items/{item}").status == 404
    cached = replica.get(f"/items/{item}")
    assert cached.status == 404 and cached.header("x-cache") == "hit", "404 cached as a negative entry"
    sql_insert(stack, "reinserted", item_id=item)
    xadd_change(stack, item, op="c")
    got = wait_until(lambda: (lambda x: x if x.status == 200 else None)(replica.get(f"/items/{item}")),
                     what="the reinsert to replace the negative entry")
    assert got.json()["name"] == "reinserted"


def test_group_vanishing_flushes(replica, stack):
    item = sql_insert(stack)
    replica.get(f"/items/{item}")
    assert replica.get(f"/items/{item}").header("x-cache") == "hit"
    flushes = replica.metric("cdcache_cdc_gap_flushes_total")
    stack.redis("XGROUP", "DESTROY", STREAM, "cdcache-it-main")
    wait_until(lambda: replica.metric("cdcache_cdc_gap_flushes_total") > flushes, what="NOGROUP flush")
    # reads bypass until a watermark read after the flush proves continuity again; then the old
    # entry is gone
    first = wait_until(lambda: (lambda r: r if r.header("x-cache") != "bypass" else None)(
        replica.get(f"/items/{item}")), what="serving from the cache again")
    assert first.header("x-cache") == "miss"
    wait_until(lambda: "cdcache-it-main" in stack.redis("XINFO", "GROUPS", STREAM), what="group recreated")


def test_trim_past_the_group_flushes_and_a_stuck_consumer_bypasses(stack, heartbeats):
    gate = os.path.join(tempfile.mkdtemp(prefix="cdcache-cdcgate-"), "closed")
    r = Replica(stack, "it-stuck", env={"CDCACHE_TEST_CDC_GATE": gate}).start()
    try:
        item = sql_insert(stack)
        r.get(f"/items/{item}")
        assert r.get(f"/items/{item}").header("x-cache") == "hit"
        open(gate, "w").close()  # the consumer stops reading
        # Guarantee 5: a stuck consumer cannot vouch; within max_staleness (3 s) reads bypass
        wait_until(lambda: r.get(f"/items/{item}").header("x-cache") == "bypass", 10, what="bypass")
        ready = r.get("/ready")  # bypassing answers correctly: ready, and says it bypasses
        assert ready.status == 200 and ready.json()["checks"]["cdc"]["serving_from_cache"] is False
        assert "cannot vouch" in r.read_log()
        # Guarantee 6: entries it never read are trimmed away
        flushes = r.metric("cdcache_cdc_gap_flushes_total")
        ids = [xadd_change(stack, item) for _ in range(3)]
        last_ms, last_seq = map(int, ids[-1].split("-"))
        stack.redis("XTRIM", STREAM, "MINID", f"{last_ms}-{last_seq + 1}")
        os.unlink(gate)
        wait_until(lambda: r.metric("cdcache_cdc_gap_flushes_total") > flushes, what="trim gap flush")
        wait_until(lambda: r.get(f"/items/{item}").header("x-cache") in ("miss", "hit"), 10,
                   what="caching resumes")
        assert r.read_log().count("pipeline healthy again") >= 2, "the transition is logged"
    finally:
        r.stop()


def test_redis_outage_bypasses_then_restart_flushes(replica, stack, heartbeats):
    """Runs last in this module: restarts Redis. While it is down reads bypass the cache; its new run id
    after the restart means entries may be lost, so the cache is flushed."""
    item = sql_insert(stack)
    replica.get(f"/items/{item}")
    assert replica.get(f"/items/{item}").header("x-cache") == "hit"
    flushes = replica.metric("cdcache_cdc_gap_flushes_total")
    stack.stop_part("redis")
    try:
        wait_until(lambda: replica.get(f"/items/{item}").header("x-cache") == "bypass", 10,
                   what="bypass while Redis is down")
        ready = replica.get("/ready")
        assert ready.status == 200 and ready.json()["checks"]["cdc"]["attached"] is False
    finally:
        stack.run_part("redis")
    wait_until(lambda: replica.metric("cdcache_cdc_gap_flushes_total") > flushes, 20, what="run-id flush")
    assert replica.metric("cdcache_cdc_reconnects_total") >= 1
    first = replica.get(f"/items/{item}")
    assert first.header("x-cache") in ("miss", "bypass")
    wait_until(lambda: replica.get(f"/items/{item}").header("x-cache") == "hit", 20, what="caching resumes")


def test_connection_pool_is_bounded(stack, heartbeats):
    r = Replica(stack, "it-pool", env={"CDCACHE_POSTGRES_POOL_SIZE": "2", "CDCACHE_HTTP_THREADS": "32"}).start()
    try:
        ids = [sql_insert(stack, f"pool{i}") for i in range(64)]
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            results = list(pool.map(lambda i: r.get(f"/items/{i}", {"Cache-Control": "no-cache"}), ids))
        assert all(x.status == 200 for x in results)
        assert r.metric("cdcache_db_pool_connections") <= 2
        assert r.metric("cdcache_db_pool_waits_total") > 0, "64 concurrent reads shared 2 connections"
    finally:
        r.stop()
