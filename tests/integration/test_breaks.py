"""Breaks in continuity against a real PostgreSQL and Redis (change entries and watermarks written in
Debezium Server's format; tests/e2e does the same with the real Debezium). Each test leaves a replica
holding a row whose change it can never see, and asserts it does not serve the old row as a hit."""
import contextlib
import json
import os
import signal
import time

from conftest import STREAM, xadd_change
from harness import Replica, wait_until
from test_consistency import sql_insert

WATERMARK = "cdcache.inventory.cdcache_watermark"
HEARTBEAT = "__debezium-heartbeat.cdcache"


def cached(r, item):
    r.get(f"/items/{item}")
    got = r.get(f"/items/{item}")
    assert got.header("x-cache") == "hit", got
    return got.json()["version"]


STALENESS = 3.0  # the test replicas' cdc.max_staleness_ms


def served_from_cache_again(r, item, changed_at):
    """Once the change made at changed_at (monotonic) is older than the staleness bound, polls until
    the replica serves item from its cache again (not bypass); returns that answer."""
    time.sleep(max(0.0, changed_at + STALENESS + 0.5 - time.monotonic()))
    return wait_until(lambda: (lambda x: x if x.header("x-cache") != "bypass" else None)(
        r.get(f"/items/{item}")), 20, what="serving from the cache again")


def assert_never_stale(r, item, version, seconds=3.0):
    """For a while, every read of item is at least version, however it is served."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = r.get(f"/items/{item}")
        assert got.status == 200 and got.json()["version"] >= version, \
            f"served version {got.json().get('version')} ({got.header('x-cache')}), want >= {version}"
        time.sleep(0.05)


@contextlib.contextmanager
def paused(r):
    """The replica stopped (SIGSTOP) for the block: partitioned, it cannot react until it is back."""
    r.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        r.proc.send_signal(signal.SIGCONT)


def rename(stack, item, name):
    """Changes the row with plain SQL (no replica sees it but through the stream); returns when."""
    stack.psql(f"UPDATE inventory.items SET name = '{name}' WHERE id = {item}")
    return time.monotonic()


def breaks(r, reason):
    try:
        return r.metric(f'cdcache_cdc_continuity_breaks_total{{reason="{reason}"}}')
    except KeyError:  # a build without the metric: the content checks still judge it
        return 0


def kill_clients(stack):
    """Drops every Redis client connection but redis-cli's own: a partition, as the replica sees it."""
    for line in stack.redis("CLIENT", "LIST").splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if fields.get("cmd") != "client|list":
            stack.redis("CLIENT", "KILL", "ID", fields["id"])


def test_group_removed_during_a_partition_flushes_on_reconnect(stack, heartbeats):
    """Issue 8, case 2: the replica's connection drops, retention (or an operator) removes its group,
    a change is committed meanwhile. On reconnect the group is created again at `$`: the change is
    lost to this replica, so it must flush."""
    r = Replica(stack, "it-partition").start()
    try:
        item = sql_insert(stack, "partition")
        cached(r, item)
        with paused(r):  # partitioned: it cannot react until it is back
            kill_clients(stack)
            for s in (STREAM, WATERMARK, HEARTBEAT):
                stack.redis("XGROUP", "DESTROY", s, "cdcache-it-partition")
            changed_at = rename(stack, item, "during the partition")
            xadd_change(stack, item)
        assert served_from_cache_again(r, item, changed_at).json()["name"] == "during the partition"
        wait_until(lambda: breaks(r, "group_missing") >= 1, 20, what="the break to be detected")
        assert_never_stale(r, item, 2)
    finally:
        r.stop()


def test_pending_entry_deleted_before_it_was_reread_flushes(stack, heartbeats):
    """A change was delivered to the replica's consumer but its connection broke before it applied
    it; the entry was deleted before the replica re-read its pending entries."""
    r = Replica(stack, "it-pending").start()
    try:
        item = sql_insert(stack, "pending")
        cached(r, item)
        with paused(r):
            changed_at = rename(stack, item, "pending")
            entry = xadd_change(stack, item)
            # deliver it to the replica's own consumer (as if the reply was lost on the wire) ...
            stack.redis("XREADGROUP", "GROUP", "cdcache-it-pending", "it-pending", "COUNT", "100",
                        "STREAMS", STREAM, ">")
            # ... then delete it and break the replica's connection
            stack.redis("XDEL", STREAM, entry)
            kill_clients(stack)
        assert served_from_cache_again(r, item, changed_at).json()["version"] == 2
        wait_until(lambda: breaks(r, "pending_gone") >= 1, 20, what="the break to be detected")
        assert_never_stale(r, item, 2)
    finally:
        r.stop()


def test_watermark_chain_gap_flushes(replica, stack, heartbeats):
    """Issue 8, case 3, as the replica sees it: after a source reset the watermark chain skips the
    links written while the stream was not read."""
    item = sql_insert(stack, "gap")
    cached(replica, item)
    before = breaks(replica, "source_gap")
    heartbeats.paused.set()
    try:
        time.sleep(0.5)
        changed_at = rename(stack, item, "skipped")  # never streamed
        heartbeats.seq += 5  # links written meanwhile, lost with the reset
    finally:
        heartbeats.paused.clear()
    assert served_from_cache_again(replica, item, changed_at).json()["name"] == "skipped"
    wait_until(lambda: breaks(replica, "source_gap") > before, 20, what="the chain's gap to be seen")
    assert_never_stale(replica, item, 2)


def test_replayed_watermarks_do_not_flush(replica, stack, heartbeats):
    """Debezium is at-least-once: links it sends again are not a gap."""
    item = sql_insert(stack, "replay")
    cached(replica, item)
    flushes = replica.metric("cdcache_cdc_gap_flushes_total")
    now = int(time.time() * 1000)
    for seq in range(max(1, heartbeats.seq - 3), heartbeats.seq + 1):
        value = {"before": None, "after": {"id": 1, "ts": "x", "seq": seq, "origin": heartbeats.origin},
                 "source": {"ts_ms": now}, "op": "u", "ts_ms": now}
        stack.redis("XADD", WATERMARK, "*", '{"id":1}', json.dumps(value))
    time.sleep(1.5)
    assert replica.metric("cdcache_cdc_gap_flushes_total") == flushes
    assert replica.get(f"/items/{item}").header("x-cache") == "hit"


def test_new_origin_flushes(replica, stack, heartbeats):
    """PostgreSQL restarted or failed over: the watermark comes from another server start."""
    item = sql_insert(stack, "origin")
    cached(replica, item)
    before = breaks(replica, "source_origin")
    heartbeats.paused.set()
    time.sleep(0.5)
    changed_at = rename(stack, item, "on the new primary")
    heartbeats.origin += 1
    heartbeats.paused.clear()
    assert served_from_cache_again(replica, item, changed_at).json()["name"] == "on the new primary"
    wait_until(lambda: breaks(replica, "source_origin") > before, 20, what="the new origin to be seen")


def test_fresh_source_flushes(replica, stack, heartbeats):
    """Debezium's first transaction after a start without offsets names no previous commit."""
    item = sql_insert(stack, "fresh")
    cached(replica, item)
    before = breaks(replica, "source_fresh")
    changed_at = rename(stack, item, "after a fresh start")
    other = sql_insert(stack, "other")
    now = int(time.time() * 1000)
    value = {"before": None, "after": None, "source": {"ts_ms": now, "sequence": '[null,"123"]'},
             "op": "d", "ts_ms": now}
    stack.redis("XADD", STREAM, "*", json.dumps({"id": other}), json.dumps(value))
    assert served_from_cache_again(replica, item, changed_at).json()["name"] == "after a fresh start"
    wait_until(lambda: breaks(replica, "source_fresh") > before, 20, what="the fresh start to be seen")


def test_xtrim_maxlen_0_while_paused_flushes(stack, heartbeats):
    """An operator's XTRIM MAXLEN 0 removes a change this replica had not read."""
    r = Replica(stack, "it-xtrim").start()
    try:
        item = sql_insert(stack, "xtrim")
        cached(r, item)
        with paused(r):
            # its connection goes first: a consumer blocked in XREADGROUP would otherwise be handed
            # the new entry by Redis while paused, and the trim would take nothing it had not read
            kill_clients(stack)
            changed_at = rename(stack, item, "trimmed away")
            xadd_change(stack, item)
            stack.redis("XTRIM", STREAM, "MAXLEN", "0")
        assert served_from_cache_again(r, item, changed_at).json()["name"] == "trimmed away"
        wait_until(lambda: breaks(r, "entries_removed") >= 1, 20, what="the trim to be seen")
        assert_never_stale(r, item, 2)
    finally:
        r.stop()


def test_first_write_after_a_postgresql_restart_succeeds(stack, heartbeats):
    """Pooled connections that the server closed while idle (a restart, a fenced primary) are reopened
    before use: a write on one could not be retried, since whether it ran would be unknown."""
    r = Replica(stack, "it-pgrestart").start()
    try:
        item = sql_insert(stack, "pg restart")
        for i in range(4):  # several pooled connections, all idle afterwards
            assert r.call("PATCH", f"/items/{item}", {"description": f"before {i}"}).status == 200
        stack.stop_part("pg")
        stack.run_part("pg")
        w = r.call("PATCH", f"/items/{item}", {"description": "after the restart"})
        assert w.status == 200, w
        got = r.get(f"/items/{item}", headers={"Cache-Control": "no-cache"})
        assert got.status == 200 and got.json()["description"] == "after the restart"
    finally:
        r.stop()
