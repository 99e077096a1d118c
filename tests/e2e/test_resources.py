"""Any configured table (issue 14) end to end on the real stack: PostgreSQL -> Debezium Server -> Redis
Streams -> 2 replicas -> nginx, started with CONFIG=tests/schemas/shop.yaml after tests/schemas/shop.sql
(the `shop` fixture, tests/e2e/conftest.py). Every change here is made with plain SQL or through the API and
reaches the replicas only through Debezium. Each test's docstring names the guarantee it checks; tests that
wait poll with a generous deadline."""
import http.cookiejar
import json
import random
import re
import string
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from harness import metric, report, request, wait_until

CUSTOMER_COLUMNS = ["id", "email", "name", "active", "tags", "profile", "balance", "notes", "tier", "score",
                    "born", "avatar", "created_at"]
PLACEHOLDER = "__debezium_unavailable_value"


def unique_email():
    return f"{uuid.uuid4().hex}@example.com"


def version_of(r):
    tag = r.header("etag")
    assert tag and re.fullmatch(r'"\d+"', tag), r
    return int(tag.strip('"'))


def sql_version(stack, cid):
    return int(stack.psql(f"SELECT cdcache_version FROM shop.customers WHERE id = '{cid}'"))


def insert_customer(stack, **cols):
    """A customer with a value in every column, inserted with plain SQL; returns its id."""
    cid = str(uuid.uuid4())
    row = {"id": f"'{cid}'", "email": f"'{unique_email()}'", "name": "'Zoë O''Brien'", "active": "true",
           "tags": "ARRAY['a', 'b c']::text[]", "profile": "'{\"k\": [1, 2.50, {\"x\": null}], \"s\": \"é\"}'",
           "balance": "10.50", "notes": "'short'", "tier": "'pro'", "score": "0.1", "born": "'1999-12-31'",
           "avatar": "'\\x000102ff'::bytea", "created_at": "'2026-01-02 03:04:05.123456+02'", **cols}
    stack.psql(f"INSERT INTO shop.customers ({', '.join(row)}) VALUES ({', '.join(row.values())})")
    return cid


def warm(base, path, timeout=60):
    """Reads until the replica serves path from its cache (a replica may bypass for a moment, until the
    pipeline vouches again)."""
    def hit():
        r = request(base, "GET", path)
        return r if r.status == 200 and r.header("x-cache") == "hit" else None
    return wait_until(hit, timeout, interval=0.02, what=f"a cache hit of {path} on {base}")


def wait_served_version(base, path, version, timeout=60, seen=None):
    """Polls until the replica serves `version` (the ETag) of path from its cache; every answer is
    appended to seen (when given) so the caller can check what was served meanwhile."""
    def served():
        r = request(base, "GET", path)
        if seen is not None:
            seen.append(r)
        return r if r.status == 200 and version_of(r) >= version and r.header("x-cache") == "hit" else None
    return wait_until(served, timeout, interval=0.01, what=f"version {version} of {path} on {base}")


def wait_status(base, path, status, timeout=60):
    return wait_until(lambda: request(base, "GET", path).status == status, timeout, interval=0.02,
                      what=f"{status} for {path} on {base}")


def test_every_replica_serves_the_declared_resources(shop, replicas, lb):
    """CONFIG=shop.yaml: every replica serves /items, /customers and /orders and lists them in GET /; a
    customer created through the balancer is read back from every replica."""
    for base in replicas + [lb]:
        index = request(base, "GET", "/")
        assert index.status == 200, index
        for name in ("/items", "/customers", "/orders"):
            assert f'"{name}' in index.body.decode(), index
    made = request(lb, "POST", "/customers", {"email": unique_email(), "name": "via lb"})
    assert made.status == 201, made
    for base in replicas:
        got = request(base, "GET", made.header("location"))
        assert got.status == 200 and got.json()["name"] == "via lb", got


def test_raw_sql_update_refreshes_every_replica_with_identical_bytes(shop, replicas):
    """A plain-SQL UPDATE of a cached customer reaches every replica through Debezium: each refreshes its
    entry in place (no miss on the way) and serves the new version from its cache, and the after-image
    renders byte for byte what the query renders (every column type of shop.customers, non-null)."""
    cid = insert_customer(shop)
    path = f"/customers/{cid}"
    for base in replicas:
        miss = request(base, "GET", path)
        assert miss.status == 200, miss
        warm(base, path)
    shop.psql(f"UPDATE shop.customers SET name = 'set by sql' WHERE id = '{cid}'")
    v = sql_version(shop, cid)
    for base in replicas:
        seen = []
        got = wait_served_version(base, path, v, seen=seen)
        assert "miss" not in [r.header("x-cache") for r in seen], \
            "refreshed in place from the after-image, not evicted (every column of this row renders from it)"
        assert got.json()["name"] == "set by sql" and version_of(got) == v
        fresh = request(base, "GET", path, headers={"Cache-Control": "no-cache"})
        assert fresh.header("x-cache") == "bypass"
        assert got.body == fresh.body, "the after-image and the query row render the same bytes"
    body = got.json()
    assert list(body) == CUSTOMER_COLUMNS and b'"balance":10.50,' in got.body and b'"score":0.1,' in got.body


@pytest.mark.parametrize("column,value", [
    ("tags", "ARRAY['x', NULL, 'y \"q\"']::text[]"),
    ("profile", "'[1, \"two\", {\"three\": 3.0}]'"),
    ("balance", "'9999999999.99'"),
    ("balance", "'NaN'"),
    ("score", "1e300"),
    ("score", "-0.000001"),
    ("born", "'0001-01-01'"),
    ("avatar", "decode(repeat('ff', 40), 'hex')"),
    ("created_at", "'2026-07-01 00:00:00+14'"),
    ("tier", "'enterprise'"),
    ("active", "false"),
    ("notes", "NULL"),
    ("profile", "NULL"),
])
def test_refresh_renders_each_type_like_the_query(shop, replicas, column, value):
    """Per type: a value set by plain SQL, refreshed into the cache from Debezium's after-image, renders
    byte for byte as the query row does (or the entry is evicted, then filled from the query: either way
    the cached answer equals the no-cache answer)."""
    cid = insert_customer(shop)
    path = f"/customers/{cid}"
    base = replicas[1]
    warm(base, path)
    shop.psql(f"UPDATE shop.customers SET {column} = {value} WHERE id = '{cid}'")
    v = sql_version(shop, cid)
    got = wait_served_version(base, path, v)
    fresh = request(base, "GET", path, headers={"Cache-Control": "no-cache"})
    assert got.body == fresh.body, (column, value, got.body, fresh.body)


def test_upper_case_uuid_reads_the_entry_that_events_refresh(shop, replicas):
    """A uuid key in upper case reads the same (canonical) entry: filled through the upper-case path, it is
    refreshed or evicted by Debezium's event (which names the key in lower case), so the upper-case path
    serves the new version, never the old one."""
    cid = insert_customer(shop)
    upper = f"/customers/{cid.upper()}"
    for base in replicas:
        first = warm(base, upper)
        assert first.json()["id"] == cid
        assert request(base, "GET", f"/customers/{cid}").header("x-cache") == "hit", "one entry, one key"
    shop.psql(f"UPDATE shop.customers SET name = 'upper' WHERE id = '{cid}'")
    v = sql_version(shop, cid)
    for base in replicas:
        got = wait_served_version(base, upper, v)
        assert got.json()["name"] == "upper"


def test_raw_sql_delete_is_404_on_every_replica(shop, replicas):
    """A plain-SQL DELETE of a cached customer evicts it on every replica: 404 everywhere, from the cache
    too."""
    cid = insert_customer(shop)
    path = f"/customers/{cid}"
    for base in replicas:
        warm(base, path)
    shop.psql(f"DELETE FROM shop.customers WHERE id = '{cid}'")
    for base in replicas:
        wait_status(base, path, 404)
        assert request(base, "GET", path).status == 404


def test_primary_key_change_moves_the_row_on_every_replica(shop, replicas):
    """UPDATE shop.customers SET id = ... (Debezium: a delete, a tombstone and a create): the old key is 404
    and the new key 200 on every replica, even where the new key was cached as absent."""
    old = insert_customer(shop)
    new = str(uuid.uuid4())
    for base in replicas:
        warm(base, f"/customers/{old}")
        for _ in range(2):  # the new key cached as absent (a negative entry), where the replica keeps one
            assert request(base, "GET", f"/customers/{new}").status == 404
    shop.psql(f"UPDATE shop.customers SET id = '{new}' WHERE id = '{old}'")
    for base in replicas:
        wait_status(base, f"/customers/{old}", 404)
        wait_status(base, f"/customers/{new}", 200)
        got = request(base, "GET", f"/customers/{new}")
        assert got.json()["id"] == new and got.json()["name"] == "Zoë O'Brien"


def test_unchanged_toasted_notes_are_never_served_as_a_placeholder(shop, replicas):
    """A customer with 10 kB of notes (stored out of line) is cached; a plain-SQL update of another column
    sends Debezium's placeholder for the unchanged notes. No replica ever serves the placeholder or a
    truncated value: every answer until the new version is served carries the full notes."""
    rng = random.Random(14)
    big = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10 * 1024))
    cid = insert_customer(shop, notes=f"'{big}'")
    path = f"/customers/{cid}"
    for base in replicas:
        assert request(base, "GET", path).json()["notes"] == big
        warm(base, path)
    shop.psql(f"UPDATE shop.customers SET active = false WHERE id = '{cid}'")
    v = sql_version(shop, cid)
    for base in replicas:
        seen = []
        wait_served_version(base, path, v, seen=seen)
        for r in seen:
            assert r.status == 200, r
            assert PLACEHOLDER.encode() not in r.body, "never the placeholder"
            assert r.json()["notes"] == big, "never a truncated value"
        got = request(base, "GET", path)
        assert got.json()["notes"] == big and got.json()["active"] is False


class Poller(threading.Thread):
    """Reads paths on every replica in a loop and records each status, until stopped."""

    def __init__(self, bases, paths):
        super().__init__(daemon=True)
        self.bases, self.paths = bases, paths
        self.statuses = []
        self.failures = []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            for base in self.bases:
                for p in self.paths:
                    try:
                        r = request(base, "GET", p, timeout=10)
                        self.statuses.append(r.status)
                        if r.status >= 500:
                            self.failures.append((base, p, r.status, r.body[:200]))
                    except OSError as e:
                        self.failures.append((base, p, "error", str(e)))

    def stop(self):
        self.stop_ev.set()
        self.join(30)


def test_add_and_drop_column_while_running(shop, replicas):
    """ALTER TABLE shop.customers ADD COLUMN while the replicas serve: within seconds every replica's GET
    shows the new column, although no row changes after the DDL; DROP COLUMN likewise; no answer is a
    5xx meanwhile (reads of the row and of the list are polled throughout)."""
    cid = insert_customer(shop)
    path = f"/customers/{cid}"
    for base in replicas:
        warm(base, path)
    poller = Poller(replicas, [path, "/customers?limit=5"])
    poller.start()
    try:
        t0 = time.monotonic()
        shop.psql("ALTER TABLE shop.customers ADD COLUMN loyalty integer NOT NULL DEFAULT 7")
        for base in replicas:
            wait_until(lambda: request(base, "GET", path).json().get("loyalty") == 7, 60, interval=0.05,
                       what=f"the added column on {base}")
            assert list(request(base, "GET", path).json()) == CUSTOMER_COLUMNS + ["loyalty"]
        added = time.monotonic() - t0
        # the new column is writable and cached like the others
        patched = request(replicas[0], "PATCH", path, {"loyalty": 8})
        assert patched.status == 200 and patched.json()["loyalty"] == 8, patched
        t1 = time.monotonic()
        shop.psql("ALTER TABLE shop.customers DROP COLUMN loyalty")
        for base in replicas:
            wait_until(lambda: "loyalty" not in request(base, "GET", path).json(), 60, interval=0.05,
                       what=f"the dropped column gone on {base}")
            assert list(request(base, "GET", path).json()) == CUSTOMER_COLUMNS
        dropped = time.monotonic() - t1
        time.sleep(1.0)  # keep polling a moment after the change settled
    finally:
        poller.stop()
        shop.psql("ALTER TABLE shop.customers DROP COLUMN IF EXISTS loyalty")
    assert poller.statuses, "the poller read something"
    assert not poller.failures, poller.failures[:5]
    report("e2e", f"e2e: DDL on shop.customers picked up by every replica: ADD COLUMN in {added:.1f}s, "
                  f"DROP COLUMN in {dropped:.1f}s; {len(poller.statuses)} reads meanwhile, none a 5xx")


def test_retyped_column_is_picked_up_while_running(shop, replicas):
    """ALTER TABLE shop.orders ALTER COLUMN quantity TYPE numeric(6,1) while running: every replica re-reads
    the column's type and renders the cached order with the new type (1 becomes 1.0) without a row change
    and without a 5xx; retyped back, it renders 1 again."""
    cid = insert_customer(shop)
    made = request(replicas[0], "POST", "/orders", {"customer_id": cid, "total": "1.00", "quantity": 1})
    assert made.status == 201, made
    path = made.header("location")
    for base in replicas:
        warm(base, path)
    poller = Poller(replicas, [path])
    poller.start()
    try:
        shop.psql("ALTER TABLE shop.orders ALTER COLUMN quantity TYPE numeric(6,1)")
        for base in replicas:
            wait_until(lambda: b'"quantity":1.0,' in request(base, "GET", path).body, 60, interval=0.05,
                       what=f"the retyped column on {base}")
        shop.psql("ALTER TABLE shop.orders ALTER COLUMN quantity TYPE integer USING quantity::integer")
        for base in replicas:
            wait_until(lambda: b'"quantity":1,' in request(base, "GET", path).body, 60, interval=0.05,
                       what=f"the column typed back on {base}")
    finally:
        poller.stop()
        if shop.psql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                     "'shop.orders'::regclass AND attname = 'quantity'") != "integer":
            shop.psql("ALTER TABLE shop.orders ALTER COLUMN quantity TYPE integer USING quantity::integer")
    assert not poller.failures, poller.failures[:5]


def test_poison_on_orders_stream_flushes_only_orders(shop, replicas):
    """A poison entry that names no key on the orders stream flushes orders on every replica and leaves
    customers cached; the consumers go on applying Debezium's changes."""
    cid = insert_customer(shop)
    made = request(replicas[0], "POST", "/orders", {"customer_id": cid, "total": "1.00"})
    assert made.status == 201, made
    opath, cpath = made.header("location"), f"/customers/{cid}"
    for base in replicas:
        warm(base, opath)
        warm(base, cpath)
    poison = [metric(b, "cdcache_cdc_events_poison_total") for b in replicas]
    shop.redis("XADD", "cdcache.shop.orders", "*", "not a key", "not a value")
    for i, base in enumerate(replicas):
        wait_until(lambda: metric(base, "cdcache_cdc_events_poison_total") > poison[i], 60, what="poison counted")
        assert request(base, "GET", opath).header("x-cache") == "miss", "orders were flushed"
        assert request(base, "GET", cpath).header("x-cache") == "hit", "customers were not"
    shop.psql(f"UPDATE shop.customers SET name = 'after poison' WHERE id = '{cid}'")
    v = sql_version(shop, cid)
    for base in replicas:
        assert wait_served_version(base, cpath, v).json()["name"] == "after poison"


def test_truncate_orders_flushes_only_orders(shop, replicas):
    """TRUNCATE shop.orders flushes orders on every replica (a cached order is gone) and nothing else (a
    cached customer is still a hit with the same version)."""
    cid = insert_customer(shop)
    made = request(replicas[0], "POST", "/orders", {"customer_id": cid, "total": "3.50"})
    assert made.status == 201, made
    opath, cpath = made.header("location"), f"/customers/{cid}"
    tags = {}
    for base in replicas:
        warm(base, opath)
        tags[base] = warm(base, cpath).header("etag")
    shop.psql("TRUNCATE shop.orders")
    for base in replicas:
        wait_status(base, opath, 404)
        after = request(base, "GET", cpath)
        assert after.header("x-cache") == "hit" and after.header("etag") == tags[base], \
            "the truncate of orders left customers alone"


class CookieClient:
    """A client with a cookie jar (as a browser or Postman keeps one): it sends back the cookies the
    replicas set, by their Path, and nothing else."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, base, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict((k.lower(), v) for k, v in e.headers.items()), e.read()


def test_cookie_jar_gets_read_your_writes_across_replicas(shop, replicas):
    """A client that only keeps cookies (no X-Min-Version) writes on one replica and reads on the other at
    once: it reads its own creates, updates and deletes, never the other replica's older cached copy nor a
    stale 200 after its delete."""
    a, b = replicas
    for n in range(10):
        client = CookieClient()
        status, _, body = client.call(a, "POST", "/customers", {"email": unique_email(), "name": f"c{n}"})
        assert status == 201, body
        cid = json.loads(body)["id"]
        path = f"/customers/{cid}"
        status, headers, body = client.call(b, "GET", path)
        assert status == 200 and json.loads(body)["name"] == f"c{n}", (status, body)
        warm(b, path)  # B holds version 1 in its cache
        status, headers, body = client.call(a, "PATCH", path, {"name": f"c{n}-2"})
        assert status == 200 and "cdcache-rv=" in headers.get("set-cookie", ""), headers
        status, headers, body = client.call(b, "GET", path)
        assert status == 200 and json.loads(body)["name"] == f"c{n}-2", "read-your-writes by the cookie alone"
        warm(b, path)
        status, headers, _ = client.call(a, "DELETE", path)
        assert status == 204 and "cdcache-rv=" in headers.get("set-cookie", ""), headers
        status, _, body = client.call(b, "GET", path)
        assert status == 404, ("a stale 200 after the client's own delete", body)


def test_delete_token_is_honoured_on_every_replica(shop, replicas, lb):
    """DELETE's 204 carries ETag and X-Min-Version; a read that presents it is 404 on any replica and through
    the balancer at once, never a stale 200 hit (customers, orders and items)."""
    cid = insert_customer(shop)
    for name, create in (("customers", {"email": unique_email(), "name": "d"}),
                         ("orders", {"customer_id": cid, "total": "1.00"}),
                         ("items", {"name": "d", "description": "d", "price": "1.00"})):
        made = request(replicas[0], "POST", f"/{name}", create)
        assert made.status == 201, made
        path = made.header("location")
        for base in replicas:
            warm(base, path)
        gone = request(replicas[0], "DELETE", path)
        assert gone.status == 204 and gone.header("etag") and gone.header("x-min-version"), gone
        assert gone.header("x-min-version") == gone.header("etag").strip('"')
        for base in replicas + [lb, lb]:
            r = request(base, "GET", path, headers={"X-Min-Version": gone.header("x-min-version")})
            assert r.status == 404, (name, base, r)


def test_orders_sql_update_refreshes_with_identical_bytes(shop, replicas):
    """orders (identity key, numeric, timestamptz): a plain-SQL update reaches every replica and renders as
    the query does."""
    cid = insert_customer(shop)
    made = request(replicas[0], "POST", "/orders", {"customer_id": cid, "total": "10.50"})
    assert made.status == 201, made
    path = made.header("location")
    oid = made.json()["id"]
    for base in replicas:
        warm(base, path)
    shop.psql(f"UPDATE shop.orders SET total = 99.90, placed_at = '2026-03-04 05:06:07.5+00' WHERE id = {oid}")
    v = int(shop.psql(f"SELECT cdcache_version FROM shop.orders WHERE id = {oid}"))
    for base in replicas:
        got = wait_served_version(base, path, v)
        assert b'"total":99.90,' in got.body and got.json()["placed_at"].startswith("2026-03-04T05:06:07.5")
        assert got.body == request(base, "GET", path, headers={"Cache-Control": "no-cache"}).body


def test_bad_inputs_through_the_balancer_write_nothing(shop, lb):
    """Bad input on the real stack: a malformed key, an unknown field, a wrong type, out-of-range values,
    the read-only identity: 400 problems naming the field, and nothing written."""
    r = request(lb, "GET", "/customers/not-a-uuid")
    assert r.status == 400 and r.json()["type"] == "urn:cdcache:problem:invalid-id" and r.json()["field"] == "id"
    email = unique_email()
    for field, value in (("colour", "red"), ("name", 5), ("name", "x" * 201), ("balance", "1.234"),
                         ("balance", 1e11)):
        r = request(lb, "POST", "/customers", {"email": email, "name": "b", field: value})
        assert r.status == 400 and r.json()["type"] == "urn:cdcache:problem:invalid-body", r
        assert r.json()["field"] == field, r
    assert shop.psql(f"SELECT count(*) FROM shop.customers WHERE email = '{email}'") == "0"
    cid = insert_customer(shop)
    for field, value in (("quantity", 2 ** 31), ("id", 5)):
        r = request(lb, "POST", "/orders", {"customer_id": cid, "total": 1, field: value})
        assert r.status == 400 and r.json()["field"] == field, r
    assert shop.psql(f"SELECT count(*) FROM shop.orders WHERE customer_id = '{cid}'") == "0"


def test_per_resource_metrics_ready_and_streams(shop, replicas):
    """Per-resource figures in /metrics (resource label) and /ready; each replica's consumer group is on
    every declared table's stream."""
    cid = insert_customer(shop)
    assert request(replicas[0], "POST", "/orders", {"customer_id": cid, "total": "1.00"}).status == 201
    for base in replicas:
        warm(base, f"/customers/{cid}")
        assert metric(base, 'cdcache_cache_resource_entries{resource="customers"}') >= 1
        for name in ("items", "orders"):
            metric(base, f'cdcache_cache_resource_entries{{resource="{name}"}}')  # present (KeyError if not)
        ready = request(base, "GET", "/ready").json()
        text = json.dumps(ready)
        assert '"resources"' in text and '"customers"' in text and '"orders"' in text, ready
    for stream in ("cdcache.shop.customers", "cdcache.shop.orders"):
        for i in range(1, len(replicas) + 1):
            wait_until(lambda: f"cdcache-replica-{i}" in shop.redis("XINFO", "GROUPS", stream), 60,
                       what=f"replica-{i}'s group on {stream}")


def test_openapi_describes_the_shop_resources(shop, lb):
    """/openapi.json on the stack has a schema per resource."""
    doc = request(lb, "GET", "/openapi.json").json()
    for p in ("/customers/{id}", "/orders/{id}", "/items/{id}"):
        assert p in doc["paths"], sorted(doc["paths"])
    props = [set(s.get("properties", {})) for s in doc["components"]["schemas"].values()]
    assert set(CUSTOMER_COLUMNS) in props
