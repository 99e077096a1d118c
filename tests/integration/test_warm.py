"""The warm-up (src/warm.c) against a real PostgreSQL and Redis: a replica that starts fills its cache from
its peers' hot-key samples, and installs nothing stale. Change entries are written in Debezium Server's
format (no Debezium runs here)."""
import json
import os
import tempfile
import time

import pytest

from conftest import xadd_change
from harness import Replica, wait_until

# samples every 200 ms, so a test need not wait 5 s for one
WARM = """warm:
  publish_interval_ms: 200
  sample_ttl_ms: 20000
  ready_deadline_ms: 10000
"""


def insert_items(stack, n, name):
    out = stack.psql("INSERT INTO inventory.items (name, description, price) SELECT "
                     f"'{name}' || g, 'd', 1.00 FROM generate_series(1, {n}) g RETURNING id")
    return [int(x) for x in out.splitlines() if x.strip()]


def sample_of(stack, replica_id):
    raw = stack.redis("GET", f"cdcache:hot:cdcache-{replica_id}")
    return json.loads(raw) if raw else {}


def make_hot(stack, replica, replica_id, ids):
    """Reads each id twice (the second read sets SIEVE's visited bit), then waits until the replica's
    sample holds them all."""
    for _ in range(2):
        for i in ids:
            assert replica.get(f"/items/{i}").status == 200
    want = {str(i) for i in ids}
    wait_until(lambda: want <= set(sample_of(stack, replica_id).get("items", [])), 10,
               what=f"{replica_id}'s sample to hold the hot keys")


@pytest.fixture(scope="module")
def peer(stack, heartbeats):
    r = Replica(stack, "it-warm-peer", extra_yaml=WARM).start()
    yield r
    r.stop()


def test_a_row_updated_while_the_replica_was_down_is_served_new_after_it_comes_back(stack, peer):
    """The issue's proof. A replica with hot keys is stopped; one of its rows is updated meanwhile (its
    change entry goes to the stream, which the restarted replica skips: it positions its group at the
    end). Back up, the replica is warm (hits at once) and serves that row NEW."""
    ids = insert_items(stack, 40, "warm")
    a = Replica(stack, "it-warm-a", extra_yaml=WARM).start()
    try:
        make_hot(stack, a, "it-warm-a", ids)
        make_hot(stack, peer, "it-warm-peer", ids)
        a.stop()
        x = ids[0]
        stack.psql(f"UPDATE inventory.items SET description = 'changed while down' WHERE id = {x}")
        xadd_change(stack, x)
        wait_until(lambda: peer.get(f"/items/{x}").json()["version"] == 2, what="the peer to apply it")
        a.start()
        assert a.metric("cdcache_warm_done") == 1, "ready before the warm-up was done"
        r = a.get(f"/items/{x}")
        assert r.json()["version"] == 2 and r.json()["description"] == "changed while down", \
            "the restarted replica served the row as it was before it went down"
        assert r.header("x-cache") == "hit", "the hot row was not warmed"
        hits = sum(a.get(f"/items/{i}").header("x-cache") == "hit" for i in ids)
        assert hits >= 0.9 * len(ids), f"only {hits} of {len(ids)} hot keys were warm right after start"
        assert a.metric("cdcache_warm_entries_total") >= len(ids)
        assert a.metric("cdcache_warm_batches_total") >= 1
        ready = a.get("/ready").json()
        assert ready["warm"]["state"] == "done" and ready["warm"]["holding_ready"] is False
    finally:
        a.stop()


def test_a_change_during_a_warm_fill_voids_it(stack, peer):
    """Guarantee 1 for the warm-up. The starting replica reads a hot row (version 1) and its fill is held
    at a test gate while the row is updated and its change entry applied; then the fill runs. It must be
    refused, and the replica serve version 2."""
    ids = insert_items(stack, 3, "warmgate")
    x = ids[1]
    make_hot(stack, peer, "it-warm-peer", ids)
    gate = tempfile.mkdtemp(prefix="cdcache-gate-")
    open(os.path.join(gate, str(x)), "w").close()
    c = Replica(stack, "it-warm-gate", extra_yaml=WARM, env={"CDCACHE_TEST_FILL_GATE": gate})
    c.start(wait_ready=False)
    try:
        wait_until(lambda: os.path.exists(os.path.join(gate, f"{x}.waiting")), 20,
                   what="the warm fill to pause at the gate")
        assert c.get("/ready").status == 503, "ready while warming (within the deadline)"
        evicted = c.metric('cdcache_cdc_events_total{result="evicted"}')
        stack.psql(f"UPDATE inventory.items SET name = 'newer' WHERE id = {x}")
        xadd_change(stack, x)
        wait_until(lambda: c.metric('cdcache_cdc_events_total{result="evicted"}') > evicted,
                   what="the change to be applied while the warm fill waits")
        os.unlink(os.path.join(gate, str(x)))
        wait_until(lambda: c.metric("cdcache_warm_done") == 1, 20, what="the warm-up to end")
        r = c.get(f"/items/{x}")
        assert r.json()["version"] == 2 and r.json()["name"] == "newer", \
            f"the warm-up installed the row read before the change (X-Cache: {r.header('x-cache')})"
        assert c.metric("cdcache_warm_fill_rejections_total") >= 1
    finally:
        c.stop()


def test_ready_waits_for_the_warm_up_at_most_its_deadline(stack, peer):
    """A warm-up that cannot finish (its fill held at the gate) holds /ready only until
    warm.ready_deadline_ms; the replica then turns ready and keeps serving correctly."""
    ids = insert_items(stack, 2, "warmdeadline")
    make_hot(stack, peer, "it-warm-peer", ids)
    gate = tempfile.mkdtemp(prefix="cdcache-gate-")
    open(os.path.join(gate, str(ids[0])), "w").close()
    c = Replica(stack, "it-warm-deadline",
                extra_yaml=WARM.replace("ready_deadline_ms: 10000", "ready_deadline_ms: 1500"),
                env={"CDCACHE_TEST_FILL_GATE": gate})
    c.start(wait_ready=False)
    try:
        wait_until(lambda: os.path.exists(os.path.join(gate, f"{ids[0]}.waiting")), 20,
                   what="the warm fill to pause at the gate")
        wait_until(lambda: c.get("/ready").status == 200, 10, what="ready at the deadline")
        body = c.get("/ready").json()
        assert body["warm"]["state"] == "filling" and body["warm"]["holding_ready"] is False
    finally:
        os.unlink(os.path.join(gate, str(ids[0])))
        c.stop()


def test_samples_are_bounded_and_expire(stack, heartbeats):
    """warm.sample_keys bounds a sample; warm.sample_ttl_ms makes a stopped replica's sample go."""
    ids = insert_items(stack, 30, "warmbound")
    r = Replica(stack, "it-warm-bound",
                extra_yaml=WARM.replace("sample_ttl_ms: 20000", "sample_ttl_ms: 1000")
                + "  sample_keys: 10\n").start()
    try:
        for _ in range(2):
            for i in ids:
                r.get(f"/items/{i}")
        wait_until(lambda: len(sample_of(stack, "it-warm-bound").get("items", [])) == 10, 10,
                   what="a sample of exactly sample_keys keys")
        ttl = int(stack.redis("PTTL", "cdcache:hot:cdcache-it-warm-bound"))
        assert 0 < ttl <= 1000
    finally:
        r.stop()
    wait_until(lambda: sample_of(stack, "it-warm-bound") == {}, 5, what="the sample to expire")


def test_the_replicas_acl_user_may_publish_and_read_samples(stack, heartbeats):
    """The native stack's Redis user for replicas (scripts/redis-users.acl.in) needs nothing new: SET ... PX
    and GET on cdcache:hot:*, HGETALL on the registry."""
    from test_hardening import acl_rules
    secret = "rp-warm-7d793037a0760186"
    stack.redis("ACL", "SETUSER", "cdcache-replica", "reset", f">{secret}", *acl_rules("cdcache-replica"))
    env = {"CDCACHE_REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}",
           "CDCACHE_REDIS_USERNAME": "cdcache-replica", "CDCACHE_REDIS_PASSWORD": secret}
    ids = insert_items(stack, 5, "warmacl")
    r = Replica(stack, "it-warm-acl", extra_yaml=WARM, env=env).start()
    try:
        make_hot(stack, r, "it-warm-acl", ids)
        r.stop()
        r.start()
        assert r.metric("cdcache_warm_keys_planned") >= len(ids)
        assert r.get(f"/items/{ids[0]}").header("x-cache") == "hit"
        assert "NOPERM" not in r.read_log()
    finally:
        r.stop()
        stack.redis("ACL", "DELUSER", "cdcache-replica")


def test_no_warm_fill_before_the_stream_position_is_established(stack, peer, heartbeats):
    """The warm-up waits for the consumer's position. Here the replica's Redis user may not create its group
    at first (no XGROUP): it registers and could read the samples, but its position is not established. A row
    changes meanwhile; its change entry lands before the group exists, so the group, created at the stream's
    end once XGROUP is granted, never delivers it. A warm-up that had filled before the position would now
    serve the older row for good."""
    from test_hardening import acl_rules
    secret = "rp-warm-0cc175b9c0f1b6a8"
    rules = acl_rules("cdcache-replica")
    stack.redis("ACL", "SETUSER", "cdcache-replica", "reset", f">{secret}", *rules, "-xgroup")
    env = {"CDCACHE_REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}",
           "CDCACHE_REDIS_USERNAME": "cdcache-replica", "CDCACHE_REDIS_PASSWORD": secret}
    ids = insert_items(stack, 3, "warmpos")
    x = ids[0]
    make_hot(stack, peer, "it-warm-peer", ids)
    d = Replica(stack, "it-warm-pos", extra_yaml=WARM, env=env)
    d.start(wait_ready=False)
    try:
        wait_until(lambda: "XGROUP CREATE failed" in d.read_log(), 10, what="the group creation to be refused")
        time.sleep(1.5)  # room for a warm-up that does not wait for the position
        assert d.metric("cdcache_warm_entries_total") == 0, "warmed before the stream position was established"
        stack.psql(f"UPDATE inventory.items SET name = 'newer' WHERE id = {x}")
        xadd_change(stack, x)
        stack.redis("ACL", "SETUSER", "cdcache-replica", "+xgroup")
        wait_until(d._serving, 30, what="the replica to position its group and serve")
        wait_until(lambda: d.metric("cdcache_warm_done") == 1, 20, what="the warm-up to end")
        r = d.get(f"/items/{x}")
        assert r.json()["version"] == 2 and r.json()["name"] == "newer", \
            f"a warmed entry older than a change the replica never saw (X-Cache: {r.header('x-cache')})"
    finally:
        d.stop()
        stack.redis("ACL", "DELUSER", "cdcache-replica")
