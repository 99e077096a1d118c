"""`cdcache prepare` against a real PostgreSQL (the integration stack's cluster, in a database of its own):
the SQL applies, applies again without changing anything (not even a DDL signal), gives every write on a
table without a version column a version that rises per key (through delete and re-insert, plain SQL and
session_replication_role = replica), signals a DDL on a declared table in cdcache.ddl_signal, owns the
publication, reverts, and applies again with versions still rising. The stack's own `up` ran prepare on
its database already (scripts/stack.sh)."""
import os
import subprocess

import pytest

from harness import CDCACHE, ROOT

DB = "prepare_it"
SHOP_YAML = os.path.join(ROOT, "tests", "schemas", "shop.yaml")


def psql(stack, sql, db=DB):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                        stack.pg_port, "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def cdcache(stack, *args, config=SHOP_YAML, env=None):
    e = dict(os.environ, CDCACHE_POSTGRES_CONNINFO=f"postgresql://postgres@127.0.0.1:{stack.pg_port}/{DB}")
    e.update(env or {})
    return subprocess.run([CDCACHE, *args, "--config", config], env=e, capture_output=True, text=True)


@pytest.fixture(scope="module")
def db(stack):
    psql(stack, f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    psql(stack, f"CREATE DATABASE {DB}", db="postgres")
    r = cdcache(stack, "migrate", "up", "--dir", os.path.join(ROOT, "migrations"))
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", stack.pg_port,
                        "-U", "postgres", "-d", DB, "-f", os.path.join(ROOT, "tests", "schemas", "shop.sql")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    yield stack
    psql(stack, f"DROP DATABASE IF EXISTS {DB}", db="postgres")


def catalog_state(stack):
    """What prepare may change, as text: columns, triggers, event triggers, publication, signal rows."""
    return psql(stack, """
        SELECT string_agg(x, E'\n' ORDER BY x) FROM (
          SELECT 'col ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
                 || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE attrelid IN ('shop.customers'::regclass, 'shop.orders'::regclass, 'inventory.items'::regclass)
             AND attnum > 0 AND NOT attisdropped
          UNION ALL SELECT 'trg ' || tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text
            FROM pg_trigger WHERE NOT tgisinternal
          UNION ALL SELECT 'evt ' || evtname || ' ' || evtenabled::text || ' ' || evttags::text FROM pg_event_trigger
          UNION ALL SELECT 'pub ' || pubname || ' ' || schemaname || '.' || tablename FROM pg_publication_tables
          UNION ALL SELECT 'sig ' || tbl || ' ' || seq FROM cdcache.ddl_signal) s(x)""")


def test_prepare_applies_and_is_idempotent(db):
    printed = cdcache(db, "prepare")
    assert printed.returncode == 0, printed.stderr
    assert "ADD COLUMN cdcache_version" in printed.stdout
    r = cdcache(db, "prepare", "--apply")
    assert r.returncode == 0, r.stderr
    first = catalog_state(db)
    assert "col shop.customers.cdcache_version bigint nextval('cdcache.version_seq'::regclass)" in first
    assert "trg shop.customers cdcache_version A" in first and "trg shop.orders cdcache_version A" in first
    assert "evt cdcache_ddl_signal A" in first
    for t in ("inventory.items", "shop.customers", "shop.orders", "inventory.cdcache_watermark",
              "cdcache.ddl_signal"):
        assert f"pub cdcache_items {t}" in first, first
    assert "col inventory.items.cdcache_version" not in first, "a declared version_column is left alone"
    # the second run changes nothing: no column, trigger, publication change, and no DDL signal either
    r = cdcache(db, "prepare", "--apply")
    assert r.returncode == 0, r.stderr
    assert catalog_state(db) == first


def test_versions_rise_per_key(db):
    assert cdcache(db, "prepare", "--apply").returncode == 0
    key = "00000000-0000-0000-0000-0000000000aa"
    v = []

    def version():
        return int(psql(db, f"SELECT cdcache_version FROM shop.customers WHERE id = '{key}'"))

    psql(db, f"INSERT INTO shop.customers (id, email, name) VALUES ('{key}', 'v@x', 'V')")
    v.append(version())
    psql(db, f"UPDATE shop.customers SET name = 'W' WHERE id = '{key}'")
    v.append(version())
    # a writer that sets the column itself cannot move it backwards
    psql(db, f"UPDATE shop.customers SET cdcache_version = 1 WHERE id = '{key}'")
    v.append(version())
    psql(db, f"DELETE FROM shop.customers WHERE id = '{key}'")
    psql(db, f"INSERT INTO shop.customers (id, email, name, cdcache_version) VALUES ('{key}', 'v@x', 'V', 0)")
    v.append(version())
    # ENABLE ALWAYS: also under session_replication_role = replica
    psql(db, f"SET session_replication_role = replica; UPDATE shop.customers SET name = 'X' WHERE id = '{key}'")
    v.append(version())
    assert v == sorted(set(v)), f"versions must rise strictly: {v}"


def test_ddl_on_a_declared_table_is_signalled(db):
    assert cdcache(db, "prepare", "--apply").returncode == 0

    def seq(t):
        out = psql(db, f"SELECT seq FROM cdcache.ddl_signal WHERE tbl = '{t}'")
        return int(out) if out else 0

    before = seq("shop.orders")
    psql(db, "ALTER TABLE shop.orders ADD COLUMN gift boolean")
    assert seq("shop.orders") == before + 1
    psql(db, "ALTER TABLE shop.orders DROP COLUMN gift")
    assert seq("shop.orders") == before + 2
    psql(db, "ALTER TABLE shop.orders ALTER COLUMN status TYPE varchar(40)")
    assert seq("shop.orders") == before + 3
    # in the DDL's own transaction: a rolled-back DDL leaves no signal
    psql(db, "BEGIN; ALTER TABLE shop.orders ADD COLUMN nope int; ROLLBACK;")
    assert seq("shop.orders") == before + 3
    # "schema.table", unquoted, as the config names it
    assert psql(db, "SELECT count(*) FROM cdcache.ddl_signal WHERE tbl LIKE '%\"%'") == "0"


def test_revert_then_apply_again(db):
    assert cdcache(db, "prepare", "--apply").returncode == 0
    key = "00000000-0000-0000-0000-0000000000bb"
    psql(db, f"INSERT INTO shop.customers (id, email, name) VALUES ('{key}', 'r@x', 'R')")
    old = int(psql(db, f"SELECT cdcache_version FROM shop.customers WHERE id = '{key}'"))
    r = cdcache(db, "prepare", "--revert", "--apply")
    assert r.returncode == 0, r.stderr
    state = psql(db, """SELECT (SELECT count(*) FROM pg_attribute WHERE attname = 'cdcache_version'
                                   AND NOT attisdropped AND attrelid IN ('shop.customers'::regclass, 'shop.orders'::regclass))
                             || ' ' || (SELECT count(*) FROM pg_trigger WHERE tgname = 'cdcache_version')
                             || ' ' || (SELECT count(*) FROM pg_event_trigger)
                             || ' ' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'cdcache')
                             || ' ' || (SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables
                                         WHERE pubname = 'cdcache_items')
                             || ' ' || (SELECT count(*) FROM pg_attribute WHERE attrelid = 'inventory.items'::regclass
                                         AND attname = 'version')""")
    # the schema stays, holding only the sequence: a new prepare goes on from where it was
    assert state == "0 0 0 1 inventory.cdcache_watermark 1", state
    assert psql(db, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'cdcache'") == "1"
    assert cdcache(db, "prepare", "--revert", "--apply").returncode == 0, "revert is idempotent too"
    r = cdcache(db, "prepare", "--apply")
    assert r.returncode == 0, r.stderr
    psql(db, f"UPDATE shop.customers SET name = 'S' WHERE id = '{key}'")
    new = int(psql(db, f"SELECT cdcache_version FROM shop.customers WHERE id = '{key}'"))
    assert new > old, f"versions rise across revert and prepare too ({old} -> {new})"


def test_errors_name_the_resource(db, tmp_path):
    cfg = tmp_path / "ghost.yaml"
    cfg.write_text("resources:\n  - name: items\n    table: inventory.items\n    version_column: version\n"
                   "  - name: ghosts\n    table: shop.ghosts\n")
    r = cdcache(db, "prepare", "--apply", config=str(cfg))
    assert r.returncode != 0 and "resources[1].table: shop.ghosts does not exist" in r.stderr, r.stderr
    cfg.write_text("resources:\n  - name: items\n    table: inventory.items\n    version_column: rev\n")
    r = cdcache(db, "prepare", "--apply", config=str(cfg))
    assert r.returncode != 0 and "resources[0].version_column" in r.stderr, r.stderr
    r = cdcache(db, "prepare", "--apply", env={
        "CDCACHE_POSTGRES_CONNINFO": f"postgresql://postgres:s3cr3t@127.0.0.1:{db.pg_port}/no_such_db"})
    assert r.returncode != 0 and "s3cr3t" not in r.stderr, r.stderr
