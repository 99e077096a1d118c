#!/usr/bin/env python3
"""Records real Debezium Server events for the unit tests.

Runs a scripted set of changes against a running stack (PostgreSQL -> Debezium -> Redis), then writes
every stream entry they produced to tests/fixtures/items-events.jsonl, and the rows as PostgreSQL
returned them (text columns, the way cdcache's db module reads them) to tests/fixtures/items-rows.jsonl.

usage: scripts/record-fixtures.py STACK_DIR    (a stack started with scripts/stack.sh up STACK_DIR)
"""
import json
import os
import random
import string
import subprocess
import sys
import time

stack = sys.argv[1]
env = dict(line.strip().split("=", 1) for line in open(os.path.join(stack, "stack.env"))
           if "=" in line and not line.startswith("#"))
PG = ["psql", "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", env["PG_PORT"], "-U", "postgres", "-d", "cdcache"]
STREAM = "cdcache.inventory.items"


def sql(q):
    return subprocess.run(PG + ["-c", q], check=True, capture_output=True, text=True).stdout


def redis(*args):
    out = subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "--no-auth-warning", "--json", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def row(item_id):
    q = ("SET TimeZone='UTC'; SELECT json_build_object('id', id::text, 'name', name, 'description', "
         "description, 'price', price::text, 'created_at', created_at::text, 'updated_at', "
         f"updated_at::text, 'version', version::text) FROM inventory.items WHERE id = {item_id}")
    return json.loads(sql(q).strip().splitlines()[-1])


last = redis("XREVRANGE", STREAM, "+", "-", "COUNT", "1")
start = last[0][0] if last else "0"
rows = []
rng = random.Random(7)
big = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12000))

new_id = int(sql("INSERT INTO inventory.items (name, description, price) VALUES "
                 "('fixture \"quoted\" \\ back', E'line\\nbreak \u00e9\u20ac', 12.30) RETURNING id").strip())
rows.append(row(new_id))
sql(f"UPDATE inventory.items SET price = 99999999.99 WHERE id = {new_id}")
rows.append(row(new_id))
toast_id = int(sql(f"INSERT INTO inventory.items (name, description, price) VALUES ('toast', '{big}', 1.00) "
                   "RETURNING id").strip())
rows.append(row(toast_id))
sql(f"UPDATE inventory.items SET price = 2.00 WHERE id = {toast_id}")  # description unchanged: TOASTed
sql(f"DELETE FROM inventory.items WHERE id = {new_id}")
sql(f"INSERT INTO inventory.items (name, description, price) VALUES ('before truncate', '', 0.05)")
sql("TRUNCATE inventory.items")

deadline = time.time() + 30
entries = []
while time.time() < deadline:
    entries = [e for e in redis("XRANGE", STREAM, "(" + start, "+")]
    if len(entries) >= 8:  # c, u, c, u, d, tombstone, c, t
        break
    time.sleep(0.2)
with open("tests/fixtures/items-events.jsonl", "w") as f:
    for eid, fields in entries:
        f.write(json.dumps({"id": eid, "fields": fields}, ensure_ascii=False) + "\n")
with open("tests/fixtures/items-rows.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"recorded {len(entries)} events and {len(rows)} rows")
