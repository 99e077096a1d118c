"""The warm start on the real pipeline (issue 15): a replica restarted under supervisord comes back warm from
its peer's sample, and a row updated with plain SQL while it was down (Debezium streams the change; the
restarted replica's group, positioned at the stream's end, never delivers it) is served new."""
import json
import os
import time

from harness import request, wait_until


def hot_sample(stack, replica_id):
    raw = stack.redis("GET", f"cdcache:hot:cdcache-{replica_id}")
    return set(json.loads(raw).get("items", [])) if raw else set()


def test_a_row_updated_while_a_replica_was_down_is_served_new_and_warm(stack, replicas):
    r1, r2 = replicas[0], replicas[1]
    ids = [int(x) for x in stack.psql(
        "INSERT INTO inventory.items (name, description, price) SELECT 'e2ewarm' || g, 'd', 1.00 "
        "FROM generate_series(1, 30) g RETURNING id").split()]
    for base in (r1, r2):
        wait_until(lambda base=base: request(base, "GET", f"/items/{ids[-1]}").status == 200, 30,
                   what="the new rows readable")
        for _ in range(2):
            for i in ids:
                request(base, "GET", f"/items/{i}")
    # samples are written every warm.publish_interval_ms (5 s by default)
    wait_until(lambda: {str(i) for i in ids} <= hot_sample(stack, "replica-2"), 20,
               what="replica 2's sample to hold the hot rows")
    x = ids[0]
    log = os.path.join(stack.dir, "replica-1", "cdcache.log")
    stack.supervisorctl("stop", "replica-1")
    start = os.path.getsize(log)
    stack.psql(f"UPDATE inventory.items SET description = 'changed while replica 1 was down' WHERE id = {x}")
    wait_until(lambda: request(r2, "GET", f"/items/{x}").json()["version"] == 2, 30,
               what="replica 2 to apply the change")
    time.sleep(0.5)
    stack.supervisorctl("start", "replica-1")
    wait_until(lambda: request(r1, "GET", "/ready").status == 200, 60, what="replica 1 ready")
    wait_until(lambda: request(r1, "GET", "/ready").json()["checks"]["cdc"]["serving_from_cache"], 30,
               what="replica 1 serving from its cache")
    r = request(r1, "GET", f"/items/{x}")
    assert r.json()["version"] == 2 and r.json()["description"] == "changed while replica 1 was down", \
        "replica 1 served the row as it was before it went down"
    assert r.header("x-cache") == "hit", "the hot row was not warmed"
    hits = sum(request(r1, "GET", f"/items/{i}").header("x-cache") == "hit" for i in ids)
    assert hits >= 0.9 * len(ids), f"{hits} of {len(ids)} hot rows hit right after the restart"
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    if "serving the shared port" in text:  # LB=kernel: the kernel does not ask /ready, so it joins warm
        assert "warm: done" in text and \
            text.index("warm: done") < text.index("serving the shared port"), \
            "replica 1 joined the shared public port before its warm-up was done"
