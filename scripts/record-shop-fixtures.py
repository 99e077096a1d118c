#!/usr/bin/env python3
"""Records real Debezium Server events and query rows for the row codec's unit tests (tests/test_codec.c).

Against a running stack whose Debezium captures shop.customers, shop.orders and shop.kinds (one column per
type kind, made by this script), it writes rows with edge values, then stores:
  tests/fixtures/shop-columns.jsonl  each column's type from the catalog (typname of the element, typtype,
                                     typmod, array, oid): what catalog.c reads
  tests/fixtures/shop-rows.jsonl     {"table", "row": {column: libpq text or null}} as a query returns them
                                     (session TimeZone=UTC, DateStyle=ISO, IntervalStyle=postgres,
                                     extra_float_digits=1, bytea_output=hex: what cdcache's db module sets)
  tests/fixtures/shop-events.jsonl   {"id", "stream", "fields"}: every stream entry those writes produced,
                                     raw XADD fields, including updates whose after-image carries Debezium's
                                     placeholders for unchanged TOASTed values

usage: scripts/record-shop-fixtures.py STACK_DIR [--ddl-only]
  STACK_DIR: a stack started with scripts/stack.sh up STACK_DIR, whose debezium.source.table.include.list
  also holds shop.customers,shop.orders,shop.kinds (and tests/schemas/shop.sql and the kinds table below
  created before Debezium started, so that its publication covers them).
"""
import json
import os
import subprocess
import sys
import time

stack = sys.argv[1]
env = dict(line.strip().split("=", 1) for line in open(os.path.join(stack, "stack.env"))
           if "=" in line and not line.startswith("#"))
PG = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", env["PG_PORT"], "-U", "postgres",
      "-d", "cdcache"]
SESSION = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"
NULL = "\x01NULL\x01"
STREAMS = ["cdcache.shop.kinds", "cdcache.shop.customers", "cdcache.shop.orders"]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

KINDS_DDL = """
DO $$ BEGIN CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy', 'with "quote"');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE IF NOT EXISTS shop.kinds (
    id int4 PRIMARY KEY,
    c_int2 int2, c_int4 int4, c_int8 int8,
    c_num numeric, c_num122 numeric(12,2),
    c_f4 float4, c_f8 float8,
    c_bool bool,
    c_text text, c_vc10 varchar(10), c_ch3 char(3),
    c_uuid uuid,
    c_json json, c_jsonb jsonb,
    c_date date, c_time time, c_time3 time(3), c_ts timestamp, c_ts3 timestamp(3), c_tstz timestamptz,
    c_tstz0 timestamptz(0),
    c_bytea bytea,
    c_enum shop.mood,
    c_int4a int4[], c_texta text[], c_numa numeric[], c_jsonba jsonb[], c_int2d int4[][],
    c_int8a int8[], c_f8a float8[], c_boola bool[], c_uuida uuid[], c_datea date[], c_tstza timestamptz[],
    c_byteaa bytea[], c_enuma shop.mood[], c_vca varchar(5)[],
    c_interval interval, c_money money, c_inet inet, c_point point,
    big_text text, big_bytea bytea, big_arr int4[], big_texta text[], big_jsonb jsonb,
    big_int8a int8[], big_datea date[], big_uuida uuid[], big_byteaa bytea[], big_boola bool[],
    big_f8a float8[], big_numa numeric[], big_tstza timestamptz[], big_enuma shop.mood[], big_num numeric
);
ALTER TABLE shop.kinds ALTER COLUMN big_text SET STORAGE EXTERNAL;
ALTER TABLE shop.kinds ALTER COLUMN big_bytea SET STORAGE EXTERNAL;
ALTER TABLE shop.kinds ALTER COLUMN big_arr SET STORAGE EXTERNAL;
ALTER TABLE shop.kinds ALTER COLUMN big_texta SET STORAGE EXTERNAL;
ALTER TABLE shop.kinds ALTER COLUMN big_jsonb SET STORAGE EXTERNAL;
DO $$ DECLARE c text; BEGIN
    FOREACH c IN ARRAY ARRAY['big_int8a', 'big_datea', 'big_uuida', 'big_byteaa', 'big_boola', 'big_f8a',
                             'big_numa', 'big_tstza', 'big_enuma', 'big_num'] LOOP
        EXECUTE format('ALTER TABLE shop.kinds ALTER COLUMN %I SET STORAGE EXTERNAL', c);
    END LOOP;
END $$;
"""

# Each entry: id, then column=SQL literal. Edge values per kind.
KINDS_ROWS = [
    (1, {}),  # every column NULL
    (2, {"c_int2": "1", "c_int4": "42", "c_int8": "7", "c_num": "12.34", "c_num122": "1.50", "c_f4": "0.1",
         "c_f8": "0.1", "c_bool": "true", "c_text": "'plain'", "c_vc10": "'short'", "c_ch3": "'ab'",
         "c_uuid": "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "c_json": """'{"a": 1,  "b":[true, null]}'""",
         "c_jsonb": """'{"b": [1, 2.50, "x"], "a": {"n": null}}'""", "c_date": "'2026-01-02'",
         "c_time": "'03:04:05'", "c_time3": "'03:04:05.5'", "c_ts": "'2026-01-02 03:04:05'",
         "c_ts3": "'2026-01-02 03:04:05.123'", "c_tstz": "'2026-01-02 03:04:05.5+00'",
         "c_tstz0": "'2026-01-02 03:04:05+02'", "c_bytea": "'\\x000102ff'", "c_enum": "'happy'",
         "c_int4a": "'{1,2,3}'", "c_texta": """'{a,"b c",NULL,""}'""", "c_numa": "'{1.50,NaN,-0.001}'",
         "c_jsonba": """ARRAY['{"k": "v"}', '[1, 2]', 'null']::jsonb[]""", "c_int2d": "'{{1,2},{3,NULL}}'",
         "c_int8a": "'{9223372036854775807,-9223372036854775808}'", "c_f8a": "'{0.1,1e20,-0,NaN,Infinity}'",
         "c_boola": "'{t,f,NULL}'", "c_uuida": "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
         "c_datea": "'{2026-01-02,1969-12-31}'", "c_tstza": "'{\"2026-01-02 03:04:05.123456+00\"}'",
         "c_byteaa": "ARRAY['\\x00ff'::bytea, ''::bytea]", "c_enuma": """'{sad,"with \\"quote\\""}'""",
         "c_vca": "'{ab,\"c,d\"}'",
         "c_interval": "'1 year 2 mons 3 days 04:05:06.5'", "c_money": "12.34", "c_inet": "'192.168.0.1/24'",
         "c_point": "'(1.5,-2)'"}),
    (3, {"c_int2": "-32768", "c_int4": "-2147483648", "c_int8": "-9223372036854775808",
         "c_num": "'-123456789012345678901234567890.123456789012345678901234567890'",
         "c_num122": "'-9999999999.99'", "c_f4": "'-0'", "c_f8": "'-0'", "c_bool": "false", "c_text": "''",
         "c_vc10": "''", "c_ch3": "''", "c_uuid": "'00000000-0000-0000-0000-000000000000'",
         "c_json": "'\"str\\\\u00e9\"'", "c_jsonb": "'[]'", "c_date": "'1969-12-31'",
         "c_time": "'00:00:00'", "c_time3": "'23:59:59.999'", "c_ts": "'1900-02-28 23:59:59.000001'",
         "c_ts3": "'1970-01-01 00:00:00'", "c_tstz": "'1969-12-31 23:59:59.999999+00'",
         "c_tstz0": "'1970-01-01 00:00:00+00'", "c_bytea": "''", "c_enum": "'with \"quote\"'",
         "c_int4a": "'{}'", "c_texta": "'{}'", "c_numa": "'{}'", "c_int2d": "'[0:1][1:2]={{1,2},{3,4}}'",
         "c_interval": "'-1 days'", "c_money": "-0.01", "c_inet": "'::1'", "c_point": "'(0,0)'"}),
    (4, {"c_int2": "32767", "c_int4": "2147483647", "c_int8": "9223372036854775807", "c_num": "'NaN'",
         "c_num122": "0", "c_f4": "'NaN'", "c_f8": "'NaN'", "c_text": "E'quote\" back\\\\ nl\\n tab\\t ctl\\x01 \u00e9\u20ac\U0001F600'",
         "c_vc10": "'\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9'", "c_ch3": "'\u00e9'",
         "c_jsonb": """'{"emoji": "\U0001F600", "esc": "a\\"b\\\\c\\n\\u0001", "uni": "\\u00e9"}'""",
         "c_json": "'[1e400, -0.0, 1E+2]'",
         "c_date": "'0044-03-15 BC'", "c_time": "'24:00:00'", "c_ts": "'0001-01-01 00:00:00 BC'",
         "c_ts3": "'10000-01-01 00:00:00'", "c_tstz": "'0044-03-15 12:00:00+00 BC'", "c_tstz0": "'9999-12-31 23:59:59+00'",
         "c_texta": """ARRAY['q"uote', 'back\\slash', 'comma,', 'sp ace', 'NULL', '{brace}', '']""",
         "c_int4a": "'{NULL,-1}'", "c_numa": "'{Infinity,-Infinity}'"}),
    (5, {"c_num": "'Infinity'", "c_num122": "'99.9'", "c_f4": "'Infinity'", "c_f8": "'Infinity'",
         "c_date": "'infinity'", "c_ts": "'infinity'", "c_tstz": "'infinity'", "c_ts3": "'-infinity'",
         "c_tstz0": "'-infinity'", "c_num122a": None}),
    (6, {"c_num": "'-Infinity'", "c_f4": "'-Infinity'", "c_f8": "'-Infinity'", "c_date": "'-infinity'",
         "c_ts": "'-infinity'", "c_tstz": "'-infinity'"}),
    (7, {"c_num": "'1.0000000000000000000000000000000000000000001'", "c_f4": "'3.4028235e+38'",
         "c_f8": "'1e20'", "c_num122": "'0.10'"}),
    (8, {"c_num": "'0.000000000000000000000000000000000000000001'", "c_f4": "'1e-45'",
         "c_f8": "'5e-324'", "c_num122": "'-0.01'"}),
    (9, {"c_num": "'100000000000000000000000000000000000000000000'", "c_f4": "'1.17549435e-38'",
         "c_f8": "'1.7976931348623157e308'", "c_tstz": "'2026-01-02 03:04:05.120+00'",
         "c_ts": "'2026-06-30 12:00:00.5'", "c_time": "'12:34:56.000001'"}),
    (10, {"c_num": "'-0'", "c_f4": "'123456.78'", "c_f8": "'123456789012345680000'", "c_num122": "'-0.00'"}),
    (11, {"c_num": "'1e-7'", "c_f4": "'1e-7'", "c_f8": "'1e-7'"}),
    (12, {"c_num": "'0.5e3'", "c_f4": "'1e21'", "c_f8": "'1e21'"}),
    (13, {"c_num": "'12345678901234567890'", "c_f4": "'16777217'", "c_f8": "'9007199254740993'"}),
    (14, {"c_f4": "'0.000001'", "c_f8": "'0.000001'", "c_jsonb": "'\"scalar \\u00e9\"'",
          "c_json": "'  {\"k\" : [ ]  }  '"}),
    (15, {"c_numa": "'{1.50,-0.001,100}'", "c_texta": "'{{a,b},{c,d}}'", "c_f8a": "'{1.5}'",
          "c_int4a": "'[2:3]={7,8}'", "c_bytea": "'\\x5f5f646562657a69756d5f756e617661696c61626c655f76616c7565'"}),
]
KINDS_ROWS = [(i, {k: v for k, v in cols.items() if v is not None and k != "c_num122a"}) for i, cols in KINDS_ROWS]


def psql(q):
    e = dict(os.environ, PGOPTIONS=SESSION)
    return subprocess.run(PG + ["-tA", "-c", q], check=True, capture_output=True, text=True, env=e).stdout


def query_row(table, cols, where):
    """One row as libpq text: psql unaligned, with separators that no value here holds."""
    e = dict(os.environ, PGOPTIONS=SESSION)
    out = subprocess.run(PG + ["-tA", "-F", "\x1f", "-R", "\x1e", "-P", "null=" + NULL, "-c",
                               f"SELECT {', '.join(cols)} FROM {table} WHERE {where}"],
                         check=True, capture_output=True, text=True, env=e).stdout
    rec = out.rstrip("\n").rstrip("\x1e")
    vals = rec.split("\x1f")
    assert len(vals) == len(cols), (table, where, vals)
    return {c: (None if v == NULL else v) for c, v in zip(cols, vals)}


def redis(*args):
    out = subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "--no-auth-warning", "--json", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def columns(schema, table):
    q = ("SELECT json_agg(json_build_object('column', a.attname, 'typname', coalesce(et.typname, t.typname), "
         "'typtype', coalesce(et.typtype, t.typtype), 'typmod', a.atttypmod, 'array', t.typelem <> 0 AND t.typlen = -1 "
         "AND t.typcategory = 'A', 'oid', t.oid, 'format_type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) "
         "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem "
         "AND t.typcategory = 'A' "
         f"WHERE a.attrelid = '{schema}.{table}'::regclass AND a.attnum > 0 AND NOT a.attisdropped")
    return json.loads(psql(q).strip())


def main():
    psql(KINDS_DDL)
    if "--ddl-only" in sys.argv:  # before Debezium starts, so that its publication covers shop.kinds
        return
    starts = {}
    for s in STREAMS:
        last = redis("XREVRANGE", s, "+", "-", "COUNT", "1")
        starts[s] = last[0][0] if last else "0"
    psql("DELETE FROM shop.orders; DELETE FROM shop.customers; DELETE FROM shop.kinds")
    cols = {t: columns("shop", t) for t in ("kinds", "customers", "orders")}
    kcols = [c["column"] for c in cols["kinds"]]
    rows = []
    nevents = {s: 0 for s in STREAMS}
    for i, vals in KINDS_ROWS:
        names = ["id"] + list(vals)
        psql(f"INSERT INTO shop.kinds ({', '.join(names)}) VALUES ({', '.join([str(i)] + list(vals.values()))})")
        rows.append({"table": "shop.kinds", "row": query_row("shop.kinds", kcols, f"id = {i}")})
        nevents["cdcache.shop.kinds"] += 1
    # TOAST: big values stored out of line, then an update that leaves them alone
    psql("INSERT INTO shop.kinds (id, c_int4, big_text, big_bytea, big_arr, big_texta, big_jsonb) VALUES (100, 1, "
         "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g), "
         "(SELECT decode(string_agg(md5(g::text), ''), 'hex') FROM generate_series(1, 400) g), "
         "(SELECT array_agg(g) FROM generate_series(1, 3000) g), "
         "(SELECT array_agg(md5(g::text)) FROM generate_series(1, 300) g), "
         "(SELECT jsonb_agg(md5(g::text)) FROM generate_series(1, 300) g))")
    # every other array kind, out of line too: what Debezium sends for each when unchanged
    psql("INSERT INTO shop.kinds (id, c_int4, big_int8a, big_datea, big_uuida, big_byteaa, big_boola, big_f8a, "
         "big_numa, big_tstza, big_enuma, big_num) VALUES (101, 1, "
         "(SELECT array_agg(g::int8) FROM generate_series(1, 3000) g), "
         "(SELECT array_agg(DATE '2000-01-01' + g) FROM generate_series(1, 3000) g), "
         "(SELECT array_agg(md5(g::text)::uuid) FROM generate_series(1, 300) g), "
         "(SELECT array_agg(decode(md5(g::text), 'hex')) FROM generate_series(1, 300) g), "
         "(SELECT array_agg(g % 2 = 0) FROM generate_series(1, 9000) g), "
         "(SELECT array_agg(g / 7.0::float8) FROM generate_series(1, 3000) g), "
         "(SELECT array_agg(g / 7.0) FROM generate_series(1, 1000) g), "
         "(SELECT array_agg(TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 s') "
         "FROM generate_series(1, 3000) g), "
         "(SELECT array_agg(CASE WHEN g % 2 = 0 THEN 'sad'::shop.mood ELSE 'happy' END) "
         "FROM generate_series(1, 3000) g), "
         "(SELECT string_agg(lpad(g::text, 4, '0'), '')::numeric FROM generate_series(1, 2000) g))")
    rows.append({"table": "shop.kinds", "row": query_row("shop.kinds", kcols, "id = 100")})
    rows.append({"table": "shop.kinds", "row": query_row("shop.kinds", kcols, "id = 101")})
    psql("UPDATE shop.kinds SET c_int4 = 2 WHERE id IN (100, 101)")
    nevents["cdcache.shop.kinds"] += 4

    ccols = [c["column"] for c in cols["customers"]]
    notes = "n" * 10240
    cid = psql("INSERT INTO shop.customers (email, name, tags, profile, balance, notes, tier, score, born, avatar) "
               "VALUES ('ada@example.com', 'Ada \u00c9', '{vip,\"two words\"}', '{\"lang\": \"en\", \"n\": 1.50}', "
               f"12.30, '{notes}', 'pro', 0.1, '1815-12-10', '\\x89504e47') RETURNING id").strip().splitlines()[-1]
    rows.append({"table": "shop.customers", "row": query_row("shop.customers", ccols, f"id = '{cid}'")})
    cid2 = psql("INSERT INTO shop.customers (email, name) VALUES ('bob@example.com', 'Bob') RETURNING id"
                ).strip().splitlines()[-1]
    rows.append({"table": "shop.customers", "row": query_row("shop.customers", ccols, f"id = '{cid2}'")})
    psql(f"UPDATE shop.customers SET active = false WHERE id = '{cid}'")  # notes unchanged: placeholder
    nevents["cdcache.shop.customers"] += 3

    ocols = [c["column"] for c in cols["orders"]]
    oid = psql(f"INSERT INTO shop.orders (customer_id, total, quantity) VALUES ('{cid}', 99.90, 3) RETURNING id"
               ).strip().splitlines()[-1]
    rows.append({"table": "shop.orders", "row": query_row("shop.orders", ocols, f"id = {oid}")})
    nevents["cdcache.shop.orders"] += 1

    entries = []
    deadline = time.time() + 30
    for s in STREAMS:
        while True:
            got = redis("XRANGE", s, "(" + starts[s], "+") or []
            # the DELETEs above add d + tombstone pairs before ours: keep only c/u/r entries' count in mind
            mine = [e for e in got if '"op":"d"' not in e[1][1] and e[1][1] != "default"]
            if len(mine) >= nevents[s] or time.time() > deadline:
                break
            time.sleep(0.3)
        entries += [{"id": e[0], "stream": s, "fields": e[1]} for e in mine]
        if len(mine) < nevents[s]:
            sys.exit(f"{s}: {len(mine)} events, expected {nevents[s]}")

    with open(os.path.join(OUT, "shop-columns.jsonl"), "w") as f:
        for t, cs in cols.items():
            for c in cs:
                f.write(json.dumps(dict(table="shop." + t, **c), ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "shop-rows.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "shop-events.jsonl"), "w") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"recorded {len(rows)} rows and {len(entries)} events")


main()
