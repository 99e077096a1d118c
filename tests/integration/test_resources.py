"""Any configured table (issue 14), against a real PostgreSQL and Redis (no Debezium: change entries are
XADDed in Debezium Server's format to each table's stream, heartbeats come from HeartbeatFeeder).

The second real schema is tests/schemas/shop.sql (shop.customers: uuid key, text, varchar(200), boolean,
text[], jsonb, numeric(12,2), enum, float8, date, bytea, a TOASTed text, timestamptz; shop.orders: an
identity key, a foreign key, numeric, int4, timestamptz) and its config tests/schemas/shop.yaml (items,
customers, orders). Each test's docstring names the guarantee it checks."""
import base64
import random
import re
import string
import uuid

import pytest

from harness import SHOP_YAML, Replica, resources_yaml, wait_until
from shop import CUSTOMERS_STREAM, ITEMS_STREAM, ORDERS_STREAM, shop_replica_of, xadd_event

# shop.customers' columns, in table order: every one is exposed by default; cdcache's bookkeeping column
# (cdcache_version) never is
CUSTOMER_COLUMNS = ["id", "email", "name", "active", "tags", "profile", "balance", "notes", "tier", "score",
                    "born", "avatar", "created_at"]
ORDER_COLUMNS = ["id", "customer_id", "total", "quantity", "status", "placed_at"]
PROBLEM = "urn:cdcache:problem:"


def assert_problem(r, status, slug, field=None):
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    p = r.json()
    assert p["type"] == PROBLEM + slug and p["status"] == status, p
    assert p["title"] and p["detail"], p
    if field is not None:
        assert p.get("field") == field, p
    return p


def etag_version(r):
    """The version an ETag ("<v>") carries, as an int."""
    tag = r.header("etag")
    assert tag and re.fullmatch(r'"\d+"', tag), r
    return int(tag.strip('"'))


def unique_email():
    return f"{uuid.uuid4().hex}@example.com"


def new_customer(replica, **fields):
    body = {"email": unique_email(), "name": "Ada", **fields}
    r = replica.call("POST", "/customers", body)
    assert r.status == 201, r
    return r


def new_order(replica, customer_id, **fields):
    r = replica.call("POST", "/orders", {"customer_id": customer_id, "total": "12.50", **fields})
    assert r.status == 201, r
    return r


def sql_customer_version(stack, cid):
    return int(stack.psql(f"SELECT cdcache_version FROM shop.customers WHERE id = '{cid}'"))


def customers_with_email(stack, email):
    return int(stack.psql(f"SELECT count(*) FROM shop.customers WHERE email = '{email}'"))


def warm(replica, path, headers=None):
    """Reads until the replica serves path from its cache."""
    def hit():
        r = replica.get(path, headers)
        return r if r.header("x-cache") == "hit" else None
    return wait_until(hit, 30, what=f"a cache hit of {path}")


def cookie_attrs(set_cookie):
    """'cdcache-rv=7; Path=/x; Max-Age=5; HttpOnly; SameSite=Lax' -> ('cdcache-rv', '7', {attr: value})."""
    parts = [p.strip() for p in set_cookie.split(";")]
    name, value = parts[0].split("=", 1)
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return name, value, attrs


def assert_write_token(r, path):
    """Every write answers ETag "<v>", X-Min-Version: v and a cookie cdcache-rv=v scoped to the key's path.
    Returns v."""
    v = etag_version(r)
    assert r.header("x-min-version") == str(v), r
    name, value, attrs = cookie_attrs(r.header("set-cookie") or "")
    assert name == "cdcache-rv" and value == str(v), r
    assert attrs.get("path") == path, r
    assert attrs.get("max-age", "").isdigit() and int(attrs["max-age"]) > 0, r
    assert "httponly" in attrs and attrs.get("samesite", "").lower() == "lax", r
    return v


# ------------------------------------------------------------------ config, check-config, prepare

@pytest.fixture(scope="module", autouse=True)
def _declared_tables_prepared_afterwards(shop_db):
    """Tests here prepare configs that declare other sets of tables; afterwards the publication and the
    bookkeeping are prepared again for shop.yaml (items, customers, orders), so that the modules that run
    later find items published as before."""
    yield
    try:
        shop_replica_of(shop_db, "it-shop-restore")
    except AssertionError:
        pass  # no `cdcache prepare` to run: nothing was changed either


def test_prepare_prints_idempotent_sql_then_applies_it(shop_db):
    """`cdcache prepare --config F` prints the SQL (and changes nothing); `--apply` installs the hidden
    bookkeeping column cdcache_version with its trigger, the DDL signal table cdcache.ddl_signal with an
    event trigger on ddl_command_end, and the publication of the declared tables; running it again
    changes nothing and succeeds."""
    stack = shop_db
    stack.psql("DROP TABLE IF EXISTS public.res_prep; CREATE TABLE public.res_prep (id bigint PRIMARY KEY, v text)")
    cfg = Replica(stack, "it-prep", resources=[
        {"name": "items", "table": "inventory.items", "version_column": "version"},
        {"name": "prep", "table": "public.res_prep"}])
    printed = cfg.cli("prepare")
    assert printed.returncode == 0, printed
    assert "cdcache_version" in printed.stdout and "res_prep" in printed.stdout, printed.stdout
    assert cfg.cli("prepare").stdout == printed.stdout, "the printed SQL is stable"
    assert stack.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'res_prep' "
                      "AND column_name = 'cdcache_version'") == "0", "printing does not apply"
    for cmd in ("check-config", "serve"):
        refused = cfg.cli(cmd, timeout=30)
        assert refused.returncode != 0, f"{cmd}: a table without a version column is refused before prepare"
        out = refused.stdout + refused.stderr
        assert "prep" in out and "cdcache prepare" in out, out
    for _ in range(2):  # idempotent
        applied = cfg.cli("prepare", "--apply")
        assert applied.returncode == 0, applied
    assert stack.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND "
                      "table_name = 'res_prep' AND column_name = 'cdcache_version'") == "1"
    assert int(stack.psql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.res_prep'::regclass "
                          "AND NOT tgisinternal")) >= 1, "a trigger maintains cdcache_version"
    assert stack.psql("SELECT to_regclass('cdcache.ddl_signal') IS NOT NULL") == "t"
    assert int(stack.psql("SELECT count(*) FROM pg_event_trigger WHERE evtevent = 'ddl_command_end' "
                          "AND evtenabled <> 'D'")) >= 1
    assert int(stack.psql("SELECT count(*) FROM pg_publication_tables WHERE schemaname = 'public' "
                          "AND tablename = 'res_prep'")) >= 1, "the declared table is published"
    ok = cfg.cli("check-config")
    assert ok.returncode == 0, ok
    # the trigger bumps the version on plain SQL writes, re-inserts included
    stack.psql("INSERT INTO public.res_prep (id, v) VALUES (1, 'a')")
    v1 = int(stack.psql("SELECT cdcache_version FROM public.res_prep WHERE id = 1"))
    stack.psql("UPDATE public.res_prep SET v = 'b' WHERE id = 1")
    v2 = int(stack.psql("SELECT cdcache_version FROM public.res_prep WHERE id = 1"))
    stack.psql("DELETE FROM public.res_prep WHERE id = 1; INSERT INTO public.res_prep (id, v) VALUES (1, 'c')")
    v3 = int(stack.psql("SELECT cdcache_version FROM public.res_prep WHERE id = 1"))
    assert v1 < v2 < v3, "versions only go forward, across a delete and a re-insert of the key"


def test_prepare_covers_the_shop_schema_and_check_config_accepts_it(shop_db):
    """After prepare, `cdcache check-config` accepts shop.yaml's resources; the shop tables are published
    and carry the bookkeeping column (items keeps its declared version column)."""
    r = shop_replica_of(shop_db, "it-shop-check")
    ok = r.cli("check-config")
    assert ok.returncode == 0, ok
    for t in ("customers", "orders"):
        assert shop_db.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop' AND "
                            f"table_name = '{t}' AND column_name = 'cdcache_version'") == "1"
        assert int(shop_db.psql("SELECT count(*) FROM pg_publication_tables WHERE schemaname = 'shop' AND "
                                f"tablename = '{t}'")) >= 1
    assert shop_db.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'inventory' AND "
                        "table_name = 'items' AND column_name = 'cdcache_version'") == "0", \
        "a declared version_column needs no bookkeeping column"


BAD_RESOURCES = {
    "missing-table": ("ghost", "resources:\n  - name: ghost\n    table: shop.nope\n"),
    "missing-key": ("badkey", "resources:\n  - name: badkey\n    table: shop.customers\n    key: nope\n"),
    "missing-column": ("badcol", "resources:\n  - name: badcol\n    table: shop.customers\n"
                                 "    columns: [id, email, colour]\n"),
    "composite-key": ("pairs", "resources:\n  - name: pairs\n    table: public.res_pairs\n"
                               "    version_column: version\n"),
    "not-published": ("unwatched", "resources:\n  - name: unwatched\n    table: public.res_unwatched\n"
                                   "    version_column: version\n"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESOURCES))
def test_bad_resources_are_refused_naming_them(shop_db, case):
    """A resource whose table, key or column does not exist, whose table has a composite key, or whose
    table is missing from the publication (never served while unwatched) is refused by check-config and
    by serve, with an error that names the resource."""
    shop_db.psql("CREATE TABLE IF NOT EXISTS public.res_pairs (a int, b int, version bigint NOT NULL DEFAULT 1, "
                 "PRIMARY KEY (a, b)); CREATE TABLE IF NOT EXISTS public.res_unwatched (id bigint PRIMARY KEY, "
                 "version bigint NOT NULL DEFAULT 1)")
    name, resources = BAD_RESOURCES[case]
    r = Replica(shop_db, f"it-bad-{case}", resources=resources)
    checked = r.cli("check-config")
    assert checked.returncode != 0, checked
    assert name in checked.stdout + checked.stderr, checked
    served = r.cli("serve", timeout=30)  # refused at start: it exits instead of serving
    assert served.returncode != 0, served
    assert name in served.stdout + served.stderr, served


def test_debezium_config_lists_the_declared_tables(shop_db):
    """`cdcache debezium-config --config F` prints Debezium Server properties whose
    debezium.source.table.include.list holds every declared table."""
    r = Replica(shop_db, "it-dbz", resources=resources_yaml(SHOP_YAML))
    out = r.cli("debezium-config")
    assert out.returncode == 0, out
    props = {}
    for line in out.stdout.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    tables = {t.strip() for t in props["debezium.source.table.include.list"].split(",")}
    assert {"inventory.items", "shop.customers", "shop.orders"} <= tables, tables
    assert "debezium.source.publication.name" in props, props


def test_resources_from_the_environment_replace_the_default(shop_db, heartbeats, shop_replica):
    """CDCACHE_RESOURCES holds the same list as YAML flow text; a resources: list replaces the default,
    so a config that declares only customers serves no /items."""
    r = Replica(shop_db, "it-env-res", env={"CDCACHE_RESOURCES": "[{name: customers, table: shop.customers}]"})
    r.prepare()
    r.start()
    try:
        cid = new_customer(shop_replica).json()["id"]
        got = r.get(f"/customers/{cid}")
        assert got.status == 200 and got.json()["id"] == cid, got
        assert_problem(r.get("/items/1"), 404, "no-route")
        assert_problem(r.get("/orders/1"), 404, "no-route")
    finally:
        r.stop()


def test_no_resources_keeps_items_only(replica):
    """Declaring no resources keeps today's items, and nothing else."""
    assert replica.get("/items?limit=1").status == 200
    assert_problem(replica.get("/customers?limit=1"), 404, "no-route")


# ------------------------------------------------------------------ the API per resource

def test_customer_crud_with_etags_and_preconditions(shop_replica, shop_db):
    """POST 201 with Location and ETag (the hidden version, never in the body; defaults filled in); GET hit,
    If-None-Match 304, Cache-Control: no-cache bypass, X-Min-Version above the cached version a miss;
    PUT replaces every writable column, PATCH sets the named ones, If-Match 412 on a lost race; DELETE 204,
    then 404."""
    r = shop_replica
    created = new_customer(r, tags=["a", "b"])
    c = created.json()
    cid = c["id"]
    path = f"/customers/{cid}"
    assert created.header("location") == path
    assert list(c) == CUSTOMER_COLUMNS, "exactly the exposed columns, in table order"
    assert "cdcache_version" not in created.body.decode()
    v1 = etag_version(created)
    assert v1 == sql_customer_version(shop_db, cid)
    assert c["active"] is True and c["tier"] == "free" and c["profile"] is None and c["notes"] is None
    assert b'"balance":0.00' in created.body and c["tags"] == ["a", "b"]
    first = r.get(path)
    assert first.status == 200 and first.header("x-cache") == "hit", "the writer installed its own write"
    assert first.body == created.body and etag_version(first) == v1
    nm = r.get(path, {"If-None-Match": f'"{v1}"'})
    assert nm.status == 304 and nm.body == b"" and nm.header("etag") == f'"{v1}"'
    bypass = r.get(path, {"Cache-Control": "no-cache"})
    assert bypass.header("x-cache") == "bypass" and bypass.body == first.body
    assert r.get(path, {"X-Min-Version": str(v1 + 1)}).header("x-cache") == "miss"

    full = {"email": unique_email(), "name": "Grace", "active": False, "tags": ["x"], "profile": {"k": 1},
            "balance": "3.10", "notes": "n", "tier": "pro", "score": 2.5, "born": "1990-01-02",
            "avatar": base64.b64encode(b"\x00\x01").decode()}
    assert_problem(r.call("PUT", path, full, {"If-Match": f'"{v1 + 1000}"'}), 412, "precondition-failed")
    assert sql_customer_version(shop_db, cid) == v1, "a failed precondition writes nothing"
    put = r.call("PUT", path, full, {"If-Match": f'"{v1}"'})
    assert put.status == 200, put
    v2 = etag_version(put)
    assert v2 > v1 and v2 == sql_customer_version(shop_db, cid)
    body = put.json()
    for k, v in full.items():
        assert body[k] == (3.1 if k == "balance" else v), k
    assert b'"balance":3.10' in put.body
    patched = r.call("PATCH", path, {"notes": None, "score": 0.25})
    assert patched.status == 200, patched
    v3 = etag_version(patched)
    after = patched.json()
    assert v3 > v2 and after["notes"] is None and after["score"] == 0.25
    assert after["name"] == "Grace" and after["tier"] == "pro", "PATCH leaves the other columns alone"
    assert r.get(path).body == patched.body
    assert_problem(r.call("DELETE", path, headers={"If-Match": f'"{v1}"'}), 412, "precondition-failed")
    gone = r.call("DELETE", path, headers={"If-Match": f'"{v3}"'})
    assert gone.status == 204 and gone.body == b"", gone
    assert_problem(r.call("DELETE", path), 404, "not-found")
    assert_problem(r.get(path), 404, "not-found")
    assert_problem(r.call("PATCH", path, {"name": "x"}), 404, "not-found")


def test_orders_identity_key_and_foreign_key(shop_replica, shop_db):
    """orders: the identity key is assigned by PostgreSQL and read-only; numeric and timestamptz render as
    PostgreSQL holds them; a foreign key violation is a 4xx problem, not a 5xx, and writes nothing."""
    r = shop_replica
    cid = new_customer(r).json()["id"]
    made = new_order(r, cid, total="10.50")
    o = made.json()
    assert list(o) == ORDER_COLUMNS
    assert isinstance(o["id"], int) and made.header("location") == f"/orders/{o['id']}"
    assert b'"total":10.50' in made.body and o["quantity"] == 1 and o["status"] == "new"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o["placed_at"]), o
    assert r.get(f"/orders/{o['id']}").body == made.body
    before = shop_db.psql("SELECT count(*) FROM shop.orders")
    orphan = r.call("POST", "/orders", {"customer_id": str(uuid.uuid4()), "total": 1})
    assert 400 <= orphan.status < 500, orphan
    assert orphan.header("content-type") == "application/problem+json"
    assert shop_db.psql("SELECT count(*) FROM shop.orders") == before


@pytest.mark.parametrize("name", ["items", "customers", "orders"])
def test_every_write_answers_a_read_your_writes_token(shop_replica, name):
    """POST, PUT, PATCH and DELETE answer ETag, the token as X-Min-Version: <v> and a cookie
    cdcache-rv=<v>; Path=/NAME/<key>; Max-Age; HttpOnly; SameSite=Lax. DELETE's 204 carries them too."""
    r = shop_replica
    cid = new_customer(r).json()["id"] if name != "customers" else None
    bodies = {
        "items": ({"name": "n", "description": "d", "price": "1.00"}, {"name": "m", "description": "e", "price": 2}),
        "customers": ({"email": unique_email(), "name": "A"}, {"email": unique_email(), "name": "B"}),
        "orders": ({"customer_id": cid, "total": "1.00"}, {"customer_id": cid, "total": "2.00", "quantity": 3,
                                                          "status": "paid", "placed_at": "2026-01-01T00:00:00Z"}),
    }
    create, replace = bodies[name]
    made = r.call("POST", f"/{name}", create)
    assert made.status == 201, made
    key = made.json()["id"]
    path = f"/{name}/{key}"
    v1 = assert_write_token(made, path)
    put = r.call("PUT", path, replace)
    assert put.status == 200, put
    v2 = assert_write_token(put, path)
    patch_body = {"name": "p"} if name != "orders" else {"status": "shipped"}
    patched = r.call("PATCH", path, patch_body)
    assert patched.status == 200, patched
    v3 = assert_write_token(patched, path)
    gone = r.call("DELETE", path)
    assert gone.status == 204, gone
    v4 = assert_write_token(gone, path)
    assert v1 < v2 < v3 < v4, "each token is newer than the one before, the delete's too"


@pytest.mark.parametrize("name", ["items", "customers", "orders"])
def test_read_your_writes_across_replicas_for_updates_and_deletes(shop_replica, shop_replica_b, name):
    """Replica B holds an older copy and receives no change event (no Debezium here). After a write on
    replica A, B never answers its older copy to a read that presents the write's token, as the
    X-Min-Version header or as the cdcache-rv cookie; after a DELETE, such a read is 404 on B, never a
    stale 200 hit."""
    a, b = shop_replica, shop_replica_b
    cid = new_customer(a).json()["id"]
    create = {"items": {"name": "n", "description": "d", "price": "1.00"},
              "customers": {"email": unique_email(), "name": "A"},
              "orders": {"customer_id": cid, "total": "1.00"}}[name]
    change = {"items": {"name": "changed"}, "customers": {"name": "changed"}, "orders": {"status": "changed"}}[name]
    field = "status" if name == "orders" else "name"
    key = a.call("POST", f"/{name}", create).json()["id"]
    path = f"/{name}/{key}"
    warm(b, path)
    upd = a.call("PATCH", path, change)
    assert upd.status == 200, upd
    v = etag_version(upd)
    by_header = b.get(path, {"X-Min-Version": str(v)})
    assert by_header.status == 200 and by_header.json()[field] == "changed", by_header
    assert etag_version(by_header) >= v
    # a fresh older copy again on B, then the cookie alone
    b2key = a.call("POST", f"/{name}", dict(create, **({"email": unique_email()} if name == "customers" else {})))
    path2 = f"/{name}/{b2key.json()['id']}"
    warm(b, path2)
    upd2 = a.call("PATCH", path2, change)
    cookie = upd2.header("set-cookie").split(";", 1)[0]
    by_cookie = b.get(path2, {"Cookie": cookie})
    assert by_cookie.status == 200 and by_cookie.json()[field] == "changed", by_cookie
    # deletes: B still holds the row; the delete's token makes it answer 404
    warm(b, path)
    gone = a.call("DELETE", path)
    assert gone.status == 204, gone
    assert_problem(b.get(path, {"X-Min-Version": gone.header("x-min-version")}), 404, "not-found")
    warm(b, path2)
    gone2 = a.call("DELETE", path2)
    assert_problem(b.get(path2, {"Cookie": gone2.header("set-cookie").split(";", 1)[0]}), 404, "not-found")


def test_read_your_creates_across_replicas(shop_replica, shop_replica_b):
    """A key that replica B has cached as absent (a 404) is served once created on A, to a read that
    presents the create's token: a negative entry never answers a token that proves the row exists."""
    cid = str(uuid.uuid4())
    path = f"/customers/{cid}"
    for _ in range(2):
        assert shop_replica_b.get(path).status == 404
    made = shop_replica.call("POST", "/customers", {"id": cid, "email": unique_email(), "name": "new"})
    assert made.status == 201 and made.json()["id"] == cid, made
    got = shop_replica_b.get(path, {"X-Min-Version": made.header("x-min-version")})
    assert got.status == 200 and got.json()["name"] == "new", got
    other = str(uuid.uuid4())
    assert shop_replica_b.get(f"/customers/{other}").status == 404
    made2 = shop_replica.call("POST", "/customers", {"id": other, "email": unique_email(), "name": "new2"})
    got2 = shop_replica_b.get(f"/customers/{other}", {"Cookie": made2.header("set-cookie").split(";", 1)[0]})
    assert got2.status == 200 and got2.json()["name"] == "new2", got2


# ------------------------------------------------------------------ bad input

def test_malformed_keys_are_invalid_id(shop_replica):
    """A key that does not parse as the key column's type is a 400 invalid-id naming the key field."""
    for bad in ["not-a-uuid", "1234", str(uuid.uuid4()) + "0", "%20" + str(uuid.uuid4())]:
        assert_problem(shop_replica.get(f"/customers/{bad}"), 400, "invalid-id", "id")
        assert_problem(shop_replica.call("PATCH", f"/customers/{bad}", {"name": "x"}), 400, "invalid-id", "id")
    for bad in ["abc", "1.5", "99999999999999999999"]:
        assert_problem(shop_replica.get(f"/orders/{bad}"), 400, "invalid-id", "id")


BAD_CUSTOMER_FIELDS = [
    ("colour", "red"),              # unknown field
    ("cdcache_version", 1),         # the bookkeeping column is not a field
    ("name", 5),                    # wrong type
    ("name", "x" * 201),            # varchar(200) too long
    ("active", "yes"),
    ("tags", "a,b"),
    ("tags", [1, 2]),
    ("balance", "cheap"),
    ("balance", "10.505"),          # numeric(12,2): more decimals than the column holds
    ("balance", 12345678901.5),     # numeric(12,2): out of range
    ("tier", "gold"),               # not a value of the enum
    ("score", "fast"),
    ("born", "2020-13-45"),
    ("avatar", "not base64!"),
    ("created_at", "2026-13-01T00:00:00Z"),
]


@pytest.mark.parametrize("field,value", BAD_CUSTOMER_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in
                                                                  enumerate(BAD_CUSTOMER_FIELDS)])
def test_bad_customer_fields_are_refused_naming_them(shop_replica, shop_db, field, value):
    """An unknown field, a wrong type or a value out of the column's range is a 400 invalid-body whose
    `field` names the column, on POST, PUT and PATCH; nothing is written (checked in PostgreSQL)."""
    email = unique_email()
    assert_problem(shop_replica.call("POST", "/customers", {"email": email, "name": "A", field: value}),
                   400, "invalid-body", field)
    assert customers_with_email(shop_db, email) == 0, "nothing was written"
    c = new_customer(shop_replica)
    cid, v = c.json()["id"], etag_version(c)
    assert_problem(shop_replica.call("PATCH", f"/customers/{cid}", {field: value}), 400, "invalid-body", field)
    assert_problem(shop_replica.call("PUT", f"/customers/{cid}", {"email": email, "name": "A", field: value}),
                   400, "invalid-body", field)
    assert sql_customer_version(shop_db, cid) == v, "nothing was written"


@pytest.mark.parametrize("field,value", [("quantity", 2 ** 31), ("quantity", -2 ** 31 - 1), ("quantity", 1.5),
                                         ("total", "1.001"), ("total", "abc"), ("customer_id", "nope"),
                                         ("placed_at", "2026-02-30T00:00:00Z")])
def test_bad_order_fields_are_refused_naming_them(shop_replica, shop_db, field, value):
    """int4 overflow, a fraction for an integer, numeric with too many decimals, a malformed uuid or
    timestamp: 400 invalid-body naming the column; no order is written."""
    cid = new_customer(shop_replica).json()["id"]
    assert_problem(shop_replica.call("POST", "/orders", {"customer_id": cid, "total": "1.00", field: value}),
                   400, "invalid-body", field)
    assert shop_db.psql(f"SELECT count(*) FROM shop.orders WHERE customer_id = '{cid}'") == "0"


def test_generated_always_columns_are_read_only(shop_replica, shop_db):
    """orders.id is GENERATED ALWAYS: a POST, PUT or PATCH that names it is a 400 naming it, and writes
    nothing."""
    cid = new_customer(shop_replica).json()["id"]
    assert_problem(shop_replica.call("POST", "/orders", {"id": 424242, "customer_id": cid, "total": 1}),
                   400, "invalid-body", "id")
    assert shop_db.psql(f"SELECT count(*) FROM shop.orders WHERE customer_id = '{cid}'") == "0"
    o = new_order(shop_replica, cid).json()
    body = {"id": o["id"], "customer_id": cid, "total": "9.00"}
    assert_problem(shop_replica.call("PUT", f"/orders/{o['id']}", body), 400, "invalid-body", "id")
    assert_problem(shop_replica.call("PATCH", f"/orders/{o['id']}", {"id": o["id"] + 1}), 400, "invalid-body", "id")
    assert shop_db.psql(f"SELECT total FROM shop.orders WHERE id = {o['id']}") == "12.50"


def test_post_omitting_a_required_column_names_it(shop_replica, shop_db):
    """POST may omit columns with defaults (and nullable ones); omitting a NOT NULL column without a
    default is a 400 naming it, and nothing is written."""
    assert_problem(shop_replica.call("POST", "/customers", {"name": "no email"}), 400, "invalid-body", "email")
    assert shop_db.psql("SELECT count(*) FROM shop.customers WHERE name = 'no email'") == "0"
    assert_problem(shop_replica.call("POST", "/customers", {"email": unique_email(), "name": None}),
                   400, "invalid-body", "name")
    cid = new_customer(shop_replica).json()["id"]
    assert_problem(shop_replica.call("POST", "/orders", {"customer_id": cid}), 400, "invalid-body", "total")
    assert shop_db.psql(f"SELECT count(*) FROM shop.orders WHERE customer_id = '{cid}'") == "0"


# ------------------------------------------------------------------ representation

TYPED_ROW = ("INSERT INTO shop.customers (id, email, name, active, tags, profile, balance, notes, tier, score, "
             "born, avatar, created_at) VALUES ('{id}', '{email}', 'Zoë \"Z\" O''Brien', false, "
             "ARRAY['a', 'b c', 'd,e', NULL]::text[], '{{\"k\": [1, 2.50, {{\"x\": null}}], \"s\": \"é\\n\"}}', 10.50, "
             "NULL, 'enterprise', 0.1, '1999-12-31', '\\x000102ff'::bytea, '2026-01-02 03:04:05.123456+02')")


def test_every_type_renders_as_specified(shop_replica, shop_db):
    """uuid string, varchar string (escaped), boolean, text[] array (NULL element null), jsonb the value
    itself, numeric(12,2) with exactly PostgreSQL's digits (10.50 stays 10.50), NULL null, enum string,
    float8 shortest round trip, date YYYY-MM-DD, bytea base64, timestamptz RFC 3339 in UTC with Z; exactly
    the exposed columns; a miss and a bypass render the same bytes."""
    cid, email = str(uuid.uuid4()), unique_email()
    shop_db.psql(TYPED_ROW.format(id=cid, email=email))
    miss = shop_replica.get(f"/customers/{cid}")
    assert miss.status == 200 and miss.header("x-cache") == "miss", miss
    body = miss.body.decode()
    c = miss.json()
    assert list(c) == CUSTOMER_COLUMNS
    assert c["id"] == cid and c["email"] == email and c["name"] == 'Zoë "Z" O\'Brien'
    assert '"active":false' in body
    assert c["tags"] == ["a", "b c", "d,e", None]
    assert c["profile"] == {"k": [1, 2.50, {"x": None}], "s": "é\n"}
    assert '"balance":10.50,' in body, body
    assert '"notes":null' in body and c["tier"] == "enterprise"
    assert '"score":0.1,' in body, body
    assert c["born"] == "1999-12-31"
    assert c["avatar"] == base64.b64encode(bytes([0, 1, 2, 255])).decode()
    assert c["created_at"] == "2026-01-02T01:04:05.123456Z"
    hit = shop_replica.get(f"/customers/{cid}")
    assert hit.header("x-cache") == "hit" and hit.body == miss.body
    assert shop_replica.get(f"/customers/{cid}", {"Cache-Control": "no-cache"}).body == miss.body


def test_numeric_special_values_and_exact_digits(shop_replica, shop_db):
    """numeric is never passed through a double: the largest numeric(12,2) and one cent keep every digit;
    NaN, which JSON cannot write as a number, is the string "NaN". numeric accepts a JSON number or a
    decimal string."""
    for given, shown in [("9999999999.99", "9999999999.99"), (0.01, "0.01"), ("7", "7.00"), (-3.5, "-3.50")]:
        c = new_customer(shop_replica, balance=given)
        assert f'"balance":{shown},'.encode() in c.body, c.body
        assert shop_db.psql(f"SELECT balance::text FROM shop.customers WHERE id = '{c.json()['id']}'") == shown
    cid = str(uuid.uuid4())
    shop_db.psql(f"INSERT INTO shop.customers (id, email, name, balance) VALUES ('{cid}', '{unique_email()}', "
                 "'nan', 'NaN')")
    assert b'"balance":"NaN",' in shop_replica.get(f"/customers/{cid}").body


def test_uuid_keys_are_canonical_in_the_cache_and_in_events(shop_replica, shop_db):
    """An upper-case uuid in the path reads the same entry as the lower-case one (Location, body and ETag
    in the canonical spelling); a change event, which names the key in lower case, evicts the entry
    filled under the upper-case spelling."""
    c = new_customer(shop_replica).json()
    cid = c["id"]
    assert cid == cid.lower()
    upper = f"/customers/{cid.upper()}"
    first = shop_replica.get(upper)
    assert first.status == 200 and first.json()["id"] == cid
    assert first.header("x-cache") == "hit", "the upper-case spelling reads the entry the write installed"
    other = str(uuid.uuid4())
    shop_db.psql(f"INSERT INTO shop.customers (id, email, name) VALUES ('{other}', '{unique_email()}', 'u')")
    miss = shop_replica.get(f"/customers/{other.upper()}")
    assert miss.header("x-cache") == "miss"
    assert shop_replica.get(f"/customers/{other}").header("x-cache") == "hit", "filled under the canonical key"
    shop_db.psql(f"DELETE FROM shop.customers WHERE id = '{other}'")
    xadd_event(shop_db, CUSTOMERS_STREAM, "shop", "customers", {"id": other}, "d",
               before={"id": other, "email": "", "name": "", "active": False, "tags": [], "balance": "0.00",
                       "tier": "free", "created_at": "1970-01-01T00:00:00Z"})
    wait_until(lambda: shop_replica.get(f"/customers/{other.upper()}").status == 404, 30,
               what="the delete event to evict the entry read under the upper-case spelling")


def test_unchanged_toasted_notes_placeholder_evicts(shop_replica, shop_db):
    """An after-image whose unchanged TOASTed column carries Debezium's placeholder evicts the entry: the
    replica never serves `__debezium_unavailable_value` nor a truncated value."""
    rng = random.Random(14)
    big = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(3000))
    cid = str(uuid.uuid4())
    shop_db.psql(f"INSERT INTO shop.customers (id, email, name, notes) VALUES ('{cid}', '{unique_email()}', "
                 f"'t', '{big}')")
    path = f"/customers/{cid}"
    warm(shop_replica, path)
    shop_db.psql(f"UPDATE shop.customers SET active = false WHERE id = '{cid}'")
    after = shop_db.psql_json(f"SELECT to_jsonb(c) FROM shop.customers c WHERE id = '{cid}'")
    after["notes"] = "__debezium_unavailable_value"
    after["profile"] = None
    def handled():  # counted as incomplete (or, if its other fields do not decode, as poison: evicted too)
        return (shop_replica.metric('cdcache_cdc_events_total{result="incomplete"}') +
                shop_replica.metric("cdcache_cdc_events_poison_total"))
    before = handled()
    xadd_event(shop_db, CUSTOMERS_STREAM, "shop", "customers", {"id": cid}, "u", after=after)
    wait_until(lambda: handled() > before, 30, what="the placeholder after-image counted")
    got = shop_replica.get(path)
    assert got.header("x-cache") == "miss" and got.json()["notes"] == big and got.json()["active"] is False


# ------------------------------------------------------------------ lists and filters

def page_through(replica, first):
    """Follows `next` from first; checks the body shape and the Link header on each page; returns rows."""
    rows, url = [], first
    while url:
        r = replica.get(url)
        assert r.status == 200, r
        page = r.json()
        assert set(page) == {"items", "next"}, "the list body is {items, next} for every resource"
        rows += page["items"]
        if page["next"] is not None:
            assert r.header("link") == f'<{page["next"]}>; rel="next"', r
        else:
            assert not r.header("link"), r
        url = page["next"]
    return rows


def test_keyset_pagination_by_each_key_type(shop_replica):
    """GET /NAME?after=&limit= is keyset-paginated by the key (uuid or identity), with {"items", "next"} and
    Link rel=next; every row once, in key order."""
    cid = new_customer(shop_replica).json()["id"]
    ids = [new_order(shop_replica, cid).json()["id"] for _ in range(5)]
    rows = page_through(shop_replica, f"/orders?customer_id=eq.{cid}&limit=2")
    assert [o["id"] for o in rows] == ids
    rows = page_through(shop_replica, f"/orders?after={ids[0]}&limit=2&customer_id=eq.{cid}")
    assert [o["id"] for o in rows] == ids[1:]
    customers = page_through(shop_replica, "/customers?limit=7")
    keys = [c["id"] for c in customers]
    assert cid in keys and len(keys) == len(set(keys))
    assert keys == sorted(keys, key=lambda k: uuid.UUID(k).bytes), "in the key's order"
    assert all(list(c) == CUSTOMER_COLUMNS for c in customers)
    assert_problem(shop_replica.get("/customers?after=nope"), 400, "invalid-query", "after")


def test_filters_select_rows_from_postgresql(shop_replica):
    """?col=eq|neq|lt|lte|gt|gte|in.(a,b)|is.null on exposed columns, several ANDed; order=col.asc|desc on
    the key or an indexed column (orders.placed_at)."""
    r = shop_replica
    cid = new_customer(r).json()["id"]
    spec = [("1.00", 1, "new", "2026-01-01T00:00:00Z"), ("2.50", 2, "paid", "2026-01-03T00:00:00Z"),
            ("10.00", 3, "shipped", "2026-01-02T00:00:00Z"), ("2.50", 4, "paid", "2026-01-04T00:00:00Z")]
    ids = [new_order(r, cid, total=t, quantity=q, status=s, placed_at=p).json()["id"] for t, q, s, p in spec]

    def ids_of(query):
        got = r.get(f"/orders?customer_id=eq.{cid}&{query}")
        assert got.status == 200, (query, got)
        return [o["id"] for o in got.json()["items"]]

    assert ids_of("total=eq.2.50") == [ids[1], ids[3]]
    assert ids_of("status=neq.paid") == [ids[0], ids[2]]
    assert ids_of("quantity=lt.2") == [ids[0]]
    assert ids_of("quantity=lte.2") == ids[:2]
    assert ids_of("total=gt.2.50") == [ids[2]]
    assert ids_of("total=gte.2.50") == ids[1:]
    assert ids_of("status=in.(new,shipped)") == [ids[0], ids[2]]
    assert ids_of("status=eq.paid&quantity=gt.2") == [ids[3]], "filters are ANDed"
    assert ids_of("order=placed_at.desc") == [ids[3], ids[1], ids[2], ids[0]]
    assert ids_of("order=placed_at.asc") == [ids[0], ids[2], ids[1], ids[3]]
    assert ids_of("order=id.desc") == ids[::-1]
    with_notes = new_customer(r, notes="hello").json()["id"]
    nulls = r.get(f"/customers?id=in.({cid},{with_notes})&notes=is.null").json()["items"]
    assert [c["id"] for c in nulls] == [cid]


def test_bad_filters_are_invalid_query_naming_them(shop_replica):
    """An unknown column (the hidden cdcache_version included), an unknown operator, a value that does not
    parse as the column's type, or an order on a column no index supports: 400 invalid-query naming it."""
    assert_problem(shop_replica.get("/orders?colour=eq.red"), 400, "invalid-query", "colour")
    assert_problem(shop_replica.get("/customers?cdcache_version=gt.1"), 400, "invalid-query", "cdcache_version")
    p = assert_problem(shop_replica.get("/orders?total=like.1"), 400, "invalid-query")
    assert p.get("field") == "total" and "like" in p["detail"], p
    assert_problem(shop_replica.get("/orders?quantity=eq.many"), 400, "invalid-query", "quantity")
    p = assert_problem(shop_replica.get("/orders?order=total.asc"), 400, "invalid-query")
    assert p.get("field") in ("order", "total") and "total" in p["detail"], p
    p = assert_problem(shop_replica.get("/orders?order=placed_at.sideways"), 400, "invalid-query")
    assert p.get("field") in ("order", "placed_at") and "sideways" in p["detail"], p


# ------------------------------------------------------------------ per-resource config

def test_columns_and_methods_subsets(shop_db, heartbeats, shop_replica):
    """`columns:` limits the representation and the writable fields to the named columns; `methods:` closes
    the others with 405 and Allow."""
    r = shop_replica_of(shop_db, "it-subset", resources=[
        {"name": "people", "table": "shop.customers", "columns": ["id", "email", "name"]},
        {"name": "orders", "table": "shop.orders", "methods": ["GET"]}]).start()
    try:
        made = r.call("POST", "/people", {"email": unique_email(), "name": "s"})
        assert made.status == 201 and list(made.json()) == ["id", "email", "name"], made
        assert made.header("location") == f"/people/{made.json()['id']}"
        assert list(r.get(f"/people/{made.json()['id']}").json()) == ["id", "email", "name"]
        assert_problem(r.call("POST", "/people", {"email": unique_email(), "name": "s", "notes": "x"}),
                       400, "invalid-body", "notes")
        o = new_order(shop_replica, made.json()["id"]).json()
        assert r.get(f"/orders/{o['id']}").status == 200
        refused = r.call("POST", "/orders", {"customer_id": made.json()["id"], "total": 1})
        assert_problem(refused, 405, "method-not-allowed")
        assert "POST" not in refused.header("allow") and "GET" in refused.header("allow")
        assert_problem(r.call("DELETE", f"/orders/{o['id']}"), 405, "method-not-allowed")
        assert_problem(r.get("/customers/" + made.json()["id"]), 404, "no-route")
    finally:
        r.stop()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_per_resource_tokens_never_widen(shop_db, heartbeats):
    """A resource's write_tokens (read_tokens) replace the global auth ones for that resource: writes
    without its token are 401 with WWW-Authenticate even where the global auth has none, and its token
    writes no other resource. A resource that sets none keeps the global ones."""
    r = shop_replica_of(shop_db, "it-res-auth", env={"CDCACHE_AUTH_WRITE_TOKENS": "global-w"}, resources=[
        {"name": "items", "table": "inventory.items", "version_column": "version"},
        {"name": "customers", "table": "shop.customers", "write_tokens": "cust-w",
         "read_tokens": "cust-r"},
        {"name": "orders", "table": "shop.orders"}]).start()
    try:
        body = {"email": unique_email(), "name": "t"}
        none = r.call("POST", "/customers", body)
        assert none.status == 401 and none.header("www-authenticate").startswith("Bearer"), none
        assert r.call("POST", "/customers", body, bearer("global-w")).status == 401, \
            "the resource's list replaces the global one"
        made = r.call("POST", "/customers", body, bearer("cust-w"))
        assert made.status == 201, made
        cid = made.json()["id"]
        assert customers_with_email(shop_db, body["email"]) == 1
        assert r.get(f"/customers/{cid}").status == 401, "read_tokens close the resource's reads"
        assert r.get("/customers").status == 401
        assert r.get(f"/customers/{cid}", bearer("cust-r")).status == 200
        assert r.get(f"/customers/{cid}", bearer("cust-w")).status == 200, "a write token also reads"
        assert r.call("PATCH", f"/customers/{cid}", {"name": "x"}, bearer("cust-r")).status == 401
        assert r.call("POST", "/items", {"name": "n", "description": "d", "price": 1},
                      bearer("cust-w")).status == 401, "a resource's token writes no other resource"
        assert r.call("POST", "/orders", {"customer_id": cid, "total": 1}, bearer("cust-w")).status == 401
        assert r.call("POST", "/orders", {"customer_id": cid, "total": 1}).status == 401
        assert r.call("POST", "/orders", {"customer_id": cid, "total": 1}, bearer("global-w")).status == 201
        assert r.get("/orders?limit=1").status == 200, "reads stay open where no read tokens are set"
    finally:
        r.stop()
    # no global tokens at all: the resource's write_tokens still close its writes, and only its own
    o = shop_replica_of(shop_db, "it-res-auth2", resources=[
        {"name": "customers", "table": "shop.customers", "write_tokens": "cust-w"},
        {"name": "orders", "table": "shop.orders", "write_tokens": "order-w"}]).start()
    try:
        assert o.call("POST", "/customers", {"email": unique_email(), "name": "t"}).status == 401
        cid = o.call("POST", "/customers", {"email": unique_email(), "name": "t"}, bearer("cust-w")).json()["id"]
        assert o.call("POST", "/orders", {"customer_id": cid, "total": 1}, bearer("cust-w")).status == 401
        assert o.call("POST", "/orders", {"customer_id": cid, "total": 1}, bearer("order-w")).status == 201
    finally:
        o.stop()
    # global read tokens and a resource that sets none: still closed (never widened)
    g = shop_replica_of(shop_db, "it-res-auth3", env={"CDCACHE_AUTH_READ_TOKENS": "global-r",
                                                      "CDCACHE_AUTH_WRITE_TOKENS": "global-w"}, resources=[
        {"name": "customers", "table": "shop.customers"}]).start()
    try:
        assert g.get(f"/customers/{cid}").status == 401
        assert g.get(f"/customers/{cid}", bearer("global-r")).status == 200
    finally:
        g.stop()


# ------------------------------------------------------------------ one resource's events flush only it

def test_truncate_event_flushes_only_its_resource(shop_replica, shop_db):
    """A truncate of shop.orders flushes orders only: a cached customer and a cached item stay hits."""
    r = shop_replica
    cid = new_customer(r).json()["id"]
    oid = new_order(r, cid).json()["id"]
    item = r.call("POST", "/items", {"name": "n", "description": "d", "price": "1.00"}).json()["id"]
    for p in (f"/customers/{cid}", f"/orders/{oid}", f"/items/{item}"):
        warm(r, p)
    xadd_event(shop_db, ORDERS_STREAM, "shop", "orders", None, "t")
    wait_until(lambda: r.get(f"/orders/{oid}").header("x-cache") == "miss", 30,
               what="the truncate event to flush orders")
    assert r.get(f"/customers/{cid}").header("x-cache") == "hit", "customers were not flushed"
    assert r.get(f"/items/{item}").header("x-cache") == "hit", "items were not flushed"


def test_poison_entry_flushes_only_its_resource(shop_replica, shop_db):
    """A poison entry on the customers stream that names no readable key flushes customers only; the
    consumer goes on and the other resources keep their entries."""
    r = shop_replica
    cid = new_customer(r).json()["id"]
    oid = new_order(r, cid).json()["id"]
    item = r.call("POST", "/items", {"name": "n", "description": "d", "price": "1.00"}).json()["id"]
    for p in (f"/customers/{cid}", f"/orders/{oid}", f"/items/{item}"):
        warm(r, p)
    before = r.metric("cdcache_cdc_events_poison_total")
    shop_db.redis("XADD", CUSTOMERS_STREAM, "*", "garbage", '{"op":"u"}')
    wait_until(lambda: r.metric("cdcache_cdc_events_poison_total") > before, 30, what="poison counted")
    assert r.get(f"/customers/{cid}").header("x-cache") == "miss", "customers were flushed"
    assert r.get(f"/orders/{oid}").header("x-cache") == "hit"
    assert r.get(f"/items/{item}").header("x-cache") == "hit"
    # and the consumer still applies the customers stream's change entries after the poison
    warm(r, f"/customers/{cid}")
    shop_db.psql(f"DELETE FROM shop.orders WHERE customer_id = '{cid}'")  # the order made above
    shop_db.psql(f"DELETE FROM shop.customers WHERE id = '{cid}'")
    xadd_event(shop_db, CUSTOMERS_STREAM, "shop", "customers", {"id": cid}, "d",
               before={"id": cid, "email": "", "name": "", "active": False, "tags": [], "balance": "0.00",
                       "tier": "free", "created_at": "1970-01-01T00:00:00Z"})
    wait_until(lambda: r.get(f"/customers/{cid}").status == 404, 30, what="a delete after the poison")


# ------------------------------------------------------------------ generated from the resources

def test_index_lists_every_resource(shop_replica):
    """GET / lists every declared resource."""
    r = shop_replica.get("/")
    assert r.status == 200, r
    text = r.body.decode()
    for name in ("/items", "/customers", "/orders"):
        assert f'"{name}' in text, text


def find_schema(doc, columns):
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        if set(schema.get("properties", {})) == set(columns):
            return schema
    raise AssertionError(f"no schema with properties {columns} in {list(doc['components']['schemas'])}")


def types_of(prop):
    t = prop.get("type")
    for alt in ("anyOf", "oneOf"):
        if t is None and alt in prop:
            return set().union(*(types_of(x) for x in prop[alt]))
    return set(t) if isinstance(t, list) else {t}


def test_openapi_has_a_schema_per_resource_following_the_catalog(shop_replica):
    """/openapi.json describes /customers and /orders with a schema each, whose property types follow the
    catalog: uuid and date formats, integer, boolean, arrays of strings, nullable columns, the read-only
    identity."""
    r = shop_replica.get("/openapi.json")
    assert r.status == 200, r
    doc = r.json()
    for p in ("/customers", "/customers/{id}", "/orders", "/orders/{id}", "/items", "/items/{id}"):
        assert p in doc["paths"], sorted(doc["paths"])
    c = find_schema(doc, CUSTOMER_COLUMNS)["properties"]
    assert "string" in types_of(c["id"]) and c["id"].get("format") == "uuid"
    assert types_of(c["active"]) == {"boolean"}
    assert "array" in types_of(c["tags"]) and types_of(c["tags"]["items"]) >= {"string"}
    assert "null" in types_of(c["notes"]) and "string" in types_of(c["notes"]), "a nullable column"
    assert "null" not in types_of(c["email"])
    assert c["born"].get("format") == "date" or any(x.get("format") == "date" for x in c["born"].get("anyOf", []))
    assert "number" in types_of(c["balance"]) and "number" in types_of(c["score"])
    assert set(c["tier"].get("enum", [])) >= {"free", "pro", "enterprise"} or \
        any(set(x.get("enum", [])) >= {"free", "pro", "enterprise"} for x in c["tier"].get("anyOf", []))
    o = find_schema(doc, ORDER_COLUMNS)["properties"]
    assert types_of(o["id"]) == {"integer"} and o["id"].get("readOnly") is True
    assert types_of(o["quantity"]) == {"integer"}
    assert o["placed_at"].get("format") == "date-time" or \
        any(x.get("format") == "date-time" for x in o["placed_at"].get("anyOf", []))


def find_key(doc, key):
    """The value of the first `key` in a JSON document (depth first), or None."""
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def test_metrics_and_ready_per_resource(shop_replica):
    """/metrics carries per-resource cache figures (resource label) and /ready's JSON has a figure set per
    resource."""
    r = shop_replica
    cid = new_customer(r).json()["id"]
    oid = new_order(r, cid).json()["id"]
    warm(r, f"/customers/{cid}")
    warm(r, f"/orders/{oid}")
    text = r.get("/metrics").body.decode()
    for name in ("customers", "orders"):
        assert r.metric(f'cdcache_cache_resource_entries{{resource="{name}"}}') >= 1
        assert re.search(r'^cdcache_cache_\w*bytes\w*\{[^}]*resource="%s"[^}]*\} [1-9]' % name, text, re.M), \
            f"a per-resource bytes figure for {name}"
    assert r.metric('cdcache_cache_resource_entries{resource="items"}') >= 0
    ready = r.get("/ready").json()
    per = find_key(ready, "resources")
    assert per is not None and {"items", "customers", "orders"} <= set(per), ready
    assert per["customers"].get("entries", 0) >= 1, per


def test_consumer_group_on_every_declared_stream(shop_replica, shop_db):
    """One stream per table: the replica's consumer group exists on the customers and orders streams, and
    entries there are acknowledged after they are applied."""
    cid = new_customer(shop_replica).json()["id"]
    xadd_event(shop_db, ORDERS_STREAM, "shop", "orders", {"id": 987654321}, "d",
               before={"id": 987654321, "customer_id": cid, "total": "0.00", "quantity": 0, "status": "",
                       "placed_at": "1970-01-01T00:00:00Z"})
    for stream in (CUSTOMERS_STREAM, ORDERS_STREAM, ITEMS_STREAM):
        wait_until(lambda: "cdcache-it-shop" in shop_db.redis("XINFO", "GROUPS", stream), 30,
                   what=f"the group on {stream}")
    wait_until(lambda: shop_db.redis("XPENDING", ORDERS_STREAM, "cdcache-it-shop").splitlines()[0] == "0", 30,
               what="the orders entry acknowledged")
