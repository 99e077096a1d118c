"""The HTTP API against a real PostgreSQL and Redis (no Debezium: change entries are XADDed in Debezium
Server's format, heartbeats come from HeartbeatFeeder)."""
import json
import subprocess

from conftest import STREAM, row_image, xadd_change
from harness import CDCACHE, ROOT, Replica, request, wait_until

SEED = {"name": "init", "description": "init description", "price": 12.34}


def create(replica, body=None):
    r = replica.call("POST", "/items", body or {"name": "n", "description": "d", "price": "1.00"})
    assert r.status == 201, r
    return r.json()


def assert_problem(r, status, slug, field=None):
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    p = r.json()
    assert p["type"] == f"urn:cdcache:problem:{slug}" and p["status"] == status, p
    assert p["title"] and p["detail"], p
    if field is not None:
        assert p.get("field") == field, p
    return p


def test_seed_postman_requests(replica):
    r = replica.call("PUT", "/items", SEED)
    assert r.status == 201, r
    item = r.json()
    assert r.header("location") == f"/items/{item['id']}"
    assert r.header("etag") == '"1"'
    assert set(item) == {"id", "name", "description", "price", "created_at", "updated_at", "version"}
    assert b'"price":12.34,' in r.body
    upd = replica.call("PUT", "/items", {"id": str(item["id"]), "name": "changed", "description": "x",
                                         "price": 13.5})
    assert upd.status == 200, upd
    assert upd.json()["version"] == 2 and upd.header("etag") == '"2"'
    got = replica.get(f"/items/{item['id']}")
    assert got.status == 200 and got.json()["name"] == "changed"
    assert got.header("x-cache") == "hit", "the writer installed its own write"
    missing = replica.call("PUT", "/items", {"id": 987654321, **SEED})
    assert_problem(missing, 404, "not-found")


def test_read_paths_and_etags(replica):
    item = create(replica)
    path = f"/items/{item['id']}"
    first = replica.get(path)
    assert first.status == 200 and first.header("x-cache") == "hit", "the creating replica installed it"
    second = replica.get(path)
    assert second.header("x-cache") == "hit" and second.body == first.body
    assert second.header("etag") == '"1"'
    nm = replica.get(path, {"If-None-Match": '"1"'})
    assert nm.status == 304 and nm.body == b"" and nm.header("etag") == '"1"'
    assert replica.get(path, {"If-None-Match": '"7"'}).status == 200
    bypass = replica.get(path, {"Cache-Control": "no-cache"})
    assert bypass.header("x-cache") == "bypass" and bypass.body == first.body
    newer = replica.get(path, {"X-Min-Version": "2"})
    assert newer.header("x-cache") == "miss", "a cached version below X-Min-Version is not served"
    assert_problem(replica.get(path, {"X-Min-Version": "soon"}), 400, "invalid-header")


def test_conditional_writes(replica):
    item = create(replica)
    path = f"/items/{item['id']}"
    stale = replica.call("PUT", path, {"name": "a", "description": "b", "price": 2}, {"If-Match": '"5"'})
    assert_problem(stale, 412, "precondition-failed")
    ok = replica.call("PUT", path, {"name": "a", "description": "b", "price": 2}, {"If-Match": '"1"'})
    assert ok.status == 200 and ok.json()["version"] == 2
    patched = replica.call("PATCH", path, {"price": "3.10"})
    assert patched.status == 200
    body = patched.json()
    assert body["version"] == 3 and body["name"] == "a" and b'"price":3.10,' in patched.body
    assert_problem(replica.call("DELETE", path, headers={"If-Match": '"1"'}), 412, "precondition-failed")
    assert replica.call("DELETE", path, headers={"If-Match": '"3"'}).status == 204
    assert_problem(replica.call("DELETE", path), 404, "not-found")
    assert_problem(replica.get(path), 404, "not-found")
    assert_problem(replica.call("PATCH", path, {"price": 1}), 404, "not-found")


def test_bad_requests_get_problems(replica):
    for bad in ["abc", "0", "-1", "99999999999999999999", "1.5", "12abc", "1/2"]:
        assert_problem(replica.get(f"/items/{bad}"), 400, "invalid-id", "id")
    p = assert_problem(replica.call("POST", "/items", {**SEED, "colour": "red"}), 400, "invalid-body", "colour")
    assert "unknown field" in p["detail"]
    assert_problem(replica.call("POST", "/items", {**SEED, "price": "cheap"}), 400, "invalid-body", "price")
    assert_problem(replica.call("POST", "/items", {**SEED, "name": 5}), 400, "invalid-body", "name")
    assert_problem(replica.call("POST", "/items", {"name": "x", "price": 1}), 400, "invalid-body", "description")
    assert_problem(replica.call("POST", "/items", "{not json"), 400, "invalid-body")
    assert_problem(replica.call("POST", "/items", {**SEED, "description": "x" * 5000}), 413, "body-too-large")
    assert_problem(replica.call("PUT", "/items/1", {**SEED, "id": 2}), 400, "invalid-body", "id")
    assert_problem(replica.get("/nope"), 404, "no-route")
    r = replica.call("POST", "/items/1", SEED)
    assert_problem(r, 405, "method-not-allowed")
    assert "PATCH" in r.header("allow")
    assert_problem(replica.get("/items?limit=100000"), 400, "invalid-query", "limit")
    assert_problem(replica.get("/items?after=x"), 400, "invalid-query", "after")
    assert_problem(replica.call("PUT", "/items/1", SEED, {"If-Match": "5"}), 400, "invalid-header")


def test_price_round_trips_exactly(replica, stack):
    for price in ["0.10", "99999999.99", "0.01", "7"]:
        item = create(replica, {"name": "p", "description": "", "price": price})
        got = replica.get(f"/items/{item['id']}")
        expect = price if "." in price else price + ".00"
        assert f'"price":{expect},'.encode() in got.body, got.body
        assert row_image(stack, item["id"])["price"] == expect


def test_keyset_pagination(replica):
    ids = [create(replica)["id"] for _ in range(5)]
    after, seen = ids[0] - 1, []
    while True:
        page = replica.get(f"/items?after={after}&limit=2").json()
        seen += [i["id"] for i in page["items"]]
        if page["next"] is None:
            break
        after = int(page["next"].split("after=")[1].split("&")[0])
    assert seen[:5] == ids


def test_change_event_refreshes_with_identical_bytes(replica, stack):
    item = create(replica)
    path = f"/items/{item['id']}"
    replica.get(path)  # cached at version 1
    stack.psql(f"UPDATE inventory.items SET description = 'from sql' WHERE id = {item['id']}")
    xadd_change(stack, item["id"])
    got = wait_until(lambda: (lambda r: r if r.json()["version"] == 2 else None)(replica.get(path)),
                     what="refresh from the change entry")
    assert got.header("x-cache") == "hit", "refreshed in place, not evicted"
    fresh = replica.get(path, {"Cache-Control": "no-cache"})
    assert got.body == fresh.body, "after-image and query row render to the same bytes"


def test_older_and_duplicate_events_are_ignored(replica, stack):
    item = create(replica)
    path = f"/items/{item['id']}"
    stack.psql(f"UPDATE inventory.items SET name = 'v2' WHERE id = {item['id']}")
    v2 = row_image(stack, item["id"])
    assert replica.get(path, {"X-Min-Version": "2"}).json()["version"] == 2  # fills version 2
    old = dict(v2, version=1, name="v1")
    before = replica.metric('cdcache_cdc_events_total{result="stale"}')
    xadd_change(stack, item["id"], after=old)
    xadd_change(stack, item["id"], after=v2)
    wait_until(lambda: replica.metric('cdcache_cdc_events_total{result="stale"}') >= before + 2,
               what="stale events counted")
    assert replica.get(path).json()["name"] == "v2"


def test_poison_entries_do_not_stop_the_consumer(replica, stack):
    item = create(replica)
    path = f"/items/{item['id']}"
    replica.get(path)
    assert replica.get(path).header("x-cache") == "hit"
    before = replica.metric("cdcache_cdc_events_poison_total")
    key = json.dumps({"id": item["id"]})
    first = stack.redis("XADD", STREAM, "*", key, "this is not json")     # names a key: evicts it
    stack.redis("XADD", STREAM, "*", "garbage", '{"op":"u"}')             # no key: flushes
    stack.redis("XADD", STREAM, "*", key, '{"op":"z","after":null}')      # unknown op
    stack.redis("XADD", STREAM, "*", key, '{"op":"u","after":{"id":"x"}}')  # wrong types
    stack.redis("XADD", STREAM, "*", key, "x" * 100000)                   # over cdc.max_entry_bytes
    stack.redis("XADD", STREAM, "*", key, "default")                      # a tombstone: skipped
    stack.redis("XADD", STREAM, "*", "a", "b", "c", "d", "e", "f")        # wrong shape
    wait_until(lambda: replica.metric("cdcache_cdc_events_poison_total") >= before + 6,
               what="poison counted")
    assert replica.get(path).header("x-cache") == "miss", "the poison's key was evicted"
    # the consumer is still going: a valid change after the garbage is applied
    stack.psql(f"UPDATE inventory.items SET name = 'after poison' WHERE id = {item['id']}")
    xadd_change(stack, item["id"])
    wait_until(lambda: replica.get(path).json()["name"] == "after poison", what="change after poison")
    pending = stack.redis("XPENDING", STREAM, "cdcache-it-main")
    assert pending.splitlines()[0] == "0", "everything was acknowledged"
    assert f"poison entry {first}" in replica.read_log(), "logged with its stream id"


def test_incomplete_after_image_evicts(replica, stack):
    item = create(replica)
    path = f"/items/{item['id']}"
    replica.get(path)
    stack.psql(f"UPDATE inventory.items SET price = 9.99 WHERE id = {item['id']}")
    img = dict(row_image(stack, item["id"]), description="__debezium_unavailable_value")
    xadd_change(stack, item["id"], after=img)
    wait_until(lambda: replica.get(path).header("x-cache") == "miss", what="eviction")
    body = replica.get(path).json()
    assert body["description"] == "d" and body["version"] == 2


def test_delete_and_truncate_events(replica, stack):
    a, b = create(replica), create(replica)
    for it in (a, b):
        replica.get(f"/items/{it['id']}")
    stack.psql(f"DELETE FROM inventory.items WHERE id = {a['id']}")
    before = {"id": a["id"], "name": "", "description": "", "price": "0.00",
              "created_at": "1970-01-01T00:00:00.000000Z", "updated_at": "1970-01-01T00:00:00.000000Z",
              "version": 1}
    xadd_change(stack, a["id"], op="d", after=None, before=before)
    wait_until(lambda: replica.get(f"/items/{a['id']}").status == 404, what="delete applied")
    assert replica.get(f"/items/{a['id']}").header("x-cache") == "hit", "negative entry"
    assert replica.get(f"/items/{b['id']}").header("x-cache") == "hit"
    flushes = replica.metric("cdcache_cache_flushes_total")
    stack.redis("XADD", STREAM, "*", "default", json.dumps({"before": None, "after": None, "op": "t",
                                                            "source": {"ts_ms": 1}}))
    wait_until(lambda: replica.metric("cdcache_cache_flushes_total") > flushes, what="truncate flush")
    assert replica.get(f"/items/{b['id']}").header("x-cache") == "miss"


def test_bypass_while_the_pipeline_is_silent(replica, heartbeats):
    item = create(replica)
    path = f"/items/{item['id']}"
    replica.get(path)
    assert replica.get(path).header("x-cache") == "hit"
    heartbeats.paused.set()
    try:
        wait_until(lambda: replica.get(path).header("x-cache") == "bypass", 15, what="bypass")
        ready = replica.get("/ready")
        # bypassing is a correct answer: still ready; freshness is in the JSON
        assert ready.status == 200 and ready.json()["checks"]["cdc"]["serving_from_cache"] is False
        assert replica.metric("cdcache_cdc_vouching") == 0
    finally:
        heartbeats.paused.clear()
    wait_until(lambda: replica.get(path).header("x-cache") == "hit", 15, what="caching resumes")
    assert replica.get("/ready").status == 200


def test_health_ready_metrics(replica):
    assert replica.get("/health").json() == {"status": "ok"}
    ready = replica.get("/ready").json()
    assert ready["ready"] and ready["checks"]["postgres"]["ok"] and ready["checks"]["cdc"]["attached"]
    # the lag is known (present) once the pipeline vouches; right after a break it is absent for a moment
    m = wait_until(lambda: (lambda r: r if b"cdcache_cdc_lag_seconds " in r.body else None)(replica.get("/metrics")),
                   20, what="cdcache_cdc_lag_seconds on /metrics")
    assert m.header("content-type").startswith("text/plain")
    text = m.body.decode()
    for series in ["cdcache_http_requests_total{route=\"GET /items/{id}\",status=\"200\"}",
                   "cdcache_http_request_duration_seconds_bucket", "cdcache_cache_hits_total",
                   "cdcache_cache_misses_total", "cdcache_cache_evictions_total", "cdcache_cache_bytes",
                   "cdcache_cache_entries", "cdcache_cdc_events_applied_total",
                   "cdcache_cdc_events_ignored_total", "cdcache_cdc_events_poison_total",
                   "cdcache_cdc_lag_seconds", "cdcache_cache_fill_rejections_total{reason=\"lease_void\"}"]:
        assert series in text, series


def test_cache_bytes_cap_is_enforced(stack, heartbeats):
    r = Replica(stack, "it-small", "cache:\n  max_bytes: 64KiB\n  shards: 4\n").start()
    try:
        ids = [create(r, {"name": "n", "description": "x" * 2000, "price": 1})["id"] for _ in range(60)]
        for i in ids:
            assert r.get(f"/items/{i}").status == 200
        assert r.metric("cdcache_cache_bytes") <= 64 * 1024
        assert r.metric("cdcache_cache_evictions_total") > 0
    finally:
        r.stop()


def test_trigger_bumps_version_for_plain_sql(stack, replica):
    item = create(replica)
    stack.psql(f"UPDATE inventory.items SET name = 'sql' WHERE id = {item['id']}")
    stack.psql(f"UPDATE inventory.items SET name = 'sql2' WHERE id = {item['id']}")
    img = row_image(stack, item["id"])
    assert img["version"] == 3 and img["updated_at"] > img["created_at"]


def test_bad_config_fails_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("http:\n  threads: many\n")
    r = subprocess.run([CDCACHE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "http.threads" in r.stderr, r.stderr
    cfg.write_text("cache:\n  max_byte: 1\n")
    r = subprocess.run([CDCACHE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "max_byte" in r.stderr, r.stderr
    r = subprocess.run([CDCACHE, "check-config"], capture_output=True, text=True, timeout=10,
                       env={"CDCACHE_CDC_BLOCK_MS": "-4", "PATH": "/usr/bin"})
    assert r.returncode == 2 and "cdc.block_ms" in r.stderr and "CDCACHE_CDC_BLOCK_MS" in r.stderr


def test_migrations_up_down_status(stack):
    stack.psql("DROP DATABASE IF EXISTS migtest")
    stack.psql("CREATE DATABASE migtest")
    env = {"CDCACHE_POSTGRES_CONNINFO": f"postgresql://postgres@127.0.0.1:{stack.pg_port}/migtest",
           "PATH": "/usr/bin:/bin"}

    def migrate(*args):
        return subprocess.run([CDCACHE, "migrate", *args, "--dir", f"{ROOT}/migrations"], env=env,
                              capture_output=True, text=True, timeout=30)

    def has_table():
        return subprocess.run(["psql", "-X", "-tA", "-h", "127.0.0.1", "-p", stack.pg_port, "-U", "postgres",
                               "-d", "migtest", "-c", "SELECT to_regclass('inventory.items') IS NOT NULL"],
                              capture_output=True, text=True).stdout.strip() == "t"

    assert "pending" in migrate("status").stdout
    up = migrate("up")
    assert up.returncode == 0 and "000001" in up.stdout and has_table()
    assert migrate("up").returncode == 0, "up is idempotent"
    assert "applied" in migrate("status").stdout
    down = migrate("down", "all")
    assert down.returncode == 0 and not has_table(), down.stdout + down.stderr
    assert migrate("up").returncode == 0 and has_table()


def test_cache_disabled_reads_always_bypass(stack):
    r = Replica(stack, "it-nocache", env={"CDCACHE_CACHE_ENABLED": "false"}).start()
    try:
        item = create(r)
        for _ in range(3):
            got = r.get(f"/items/{item['id']}")
            assert got.status == 200 and got.header("x-cache") == "bypass"
        ready = r.get("/ready").json()
        assert ready["ready"] and ready["checks"]["cdc"] == {"ok": True, "enabled": False}
    finally:
        r.stop()
