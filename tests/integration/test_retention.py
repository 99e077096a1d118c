"""Guarantee 8: streams stay bounded. Its own PostgreSQL and Redis, two replicas (one deliberately slow)
that trim often, and sustained writes."""
import json
import threading
import time

import pytest

from conftest import STREAM
from harness import HeartbeatFeeder, Replica, Resp, Stack, wait_until

FAST_TRIM = {"CDCACHE_CDC_TRIM_INTERVAL_MS": "200", "CDCACHE_CDC_RETENTION_MIN_MS": "300",
             "CDCACHE_CDC_GROUP_DEAD_AFTER_MS": "3000"}


@pytest.fixture(scope="module")
def rstack():
    s = Stack(parts="pg redis").up()
    hb = HeartbeatFeeder(s).start()
    yield s
    hb.stop()
    s.down()


def change_entry(i):
    key = json.dumps({"id": 1_000_000 + i})
    value = json.dumps({"before": None, "after": None, "op": "d", "source": {"ts_ms": int(time.time() * 1000)}})
    return key, value


def test_stream_stays_bounded_while_a_slow_replica_is_alive(rstack):
    fast = Replica(rstack, "ret-fast", env=FAST_TRIM).start()
    slow = Replica(rstack, "ret-slow", env=dict(FAST_TRIM, CDCACHE_TEST_CDC_DELAY_MS="20",
                                                CDCACHE_CDC_BATCH_COUNT="25")).start()
    try:
        total, lengths = 3000, []
        before_slow = slow.metric('cdcache_cdc_events_total{result="absent"}')
        stop = threading.Event()

        def sample():
            probe = Resp(rstack.redis_port)
            while not stop.is_set():
                lengths.append(probe.call("XLEN", STREAM))
                time.sleep(0.05)
            probe.close()

        sampler = threading.Thread(target=sample)
        sampler.start()
        w = Resp(rstack.redis_port)
        t0 = time.monotonic()
        for i in range(total):  # about 600 entries a second, faster than the slow replica's pace at times
            w.call("XADD", STREAM, "*", *change_entry(i))
            if i % 60 == 59:
                time.sleep(max(0, t0 + (i + 1) / 600 - time.monotonic()))
        w.close()
        wait_until(lambda: slow.metric('cdcache_cdc_events_total{result="absent"}') >= before_slow + total, 60,
                   what="the slow replica to apply every entry")
        wait_until(lambda: int(rstack.redis("XLEN", STREAM)) < 600, 20, what="the stream to be trimmed")
        stop.set()
        sampler.join()
        # untrimmed it would end at 3000; trimmed it follows the slow replica's position
        assert max(lengths) < total * 0.75, f"the stream grew to {max(lengths)} of {total} entries"
        assert slow.metric("cdcache_cdc_gap_flushes_total") == 0, "trimming never passed the slow replica"
        assert slow.metric("cdcache_cdc_events_poison_total") == 0
        trimmed = fast.metric("cdcache_stream_trimmed_entries_total") + slow.metric(
            "cdcache_stream_trimmed_entries_total")
        assert trimmed >= total * 0.8
        owner = rstack.redis("GET", "cdcache:trim-lock")
        assert owner in ("cdcache-ret-fast", "cdcache-ret-slow"), "one replica holds the trim lock"
        assert int(rstack.redis("PTTL", "cdcache:trim-lock")) > 0
    finally:
        fast.stop()
        slow.stop()


def test_groups_of_gone_replicas_are_removed(rstack):
    r = Replica(rstack, "ret-live", env=FAST_TRIM).start()
    try:
        rstack.redis("XGROUP", "CREATE", STREAM, "cdcache-never-registered", "$", "MKSTREAM")
        rstack.redis("XGROUP", "CREATE", STREAM, "cdcache-long-gone", "$")
        rstack.redis("HSET", "cdcache:replicas", "cdcache-long-gone", "1000")
        wait_until(lambda: "long-gone" not in rstack.redis("XINFO", "GROUPS", STREAM)
                   and "never-registered" not in rstack.redis("XINFO", "GROUPS", STREAM), 20,
                   what="dead groups to be removed")
        assert "cdcache-ret-live" in rstack.redis("XINFO", "GROUPS", STREAM), "the live group stays"
        assert r.metric("cdcache_stream_groups_removed_total") >= 2
        assert rstack.redis("HGET", "cdcache:replicas", "cdcache-long-gone") == ""
        # a replica that stops registering loses its group after group_dead_after_ms
        gone = Replica(rstack, "ret-gone", env=FAST_TRIM).start()
        gone.stop()
        assert "cdcache-ret-gone" in rstack.redis("XINFO", "GROUPS", STREAM)
        wait_until(lambda: "cdcache-ret-gone" not in rstack.redis("XINFO", "GROUPS", STREAM), 20,
                   what="the stopped replica's group to expire")
    finally:
        r.stop()


def test_losing_the_registry_does_not_remove_live_groups(rstack):
    """FLUSHALL or an operator's DEL takes the registry with it; that is not proof the replicas are gone
    (before, the trimmer removed every live group it could not find there, and each replica flushed)."""
    a = Replica(rstack, "ret-a", env=FAST_TRIM).start()
    b = Replica(rstack, "ret-b", env=FAST_TRIM).start()
    try:
        resp = Resp(rstack.redis_port)
        end = time.monotonic() + 3
        while time.monotonic() < end:  # the registry vanishes again and again
            resp.call("DEL", "cdcache:replicas")
            time.sleep(0.01)
        resp.close()
        time.sleep(1.0)
        groups = rstack.redis("XINFO", "GROUPS", STREAM)
        assert "cdcache-ret-a" in groups and "cdcache-ret-b" in groups
        for r in (a, b):
            assert r.metric("cdcache_stream_groups_removed_total") == 0, "a live group was removed"
            assert r.metric('cdcache_cdc_continuity_breaks_total{reason="group_missing"}') == 0
    finally:
        a.stop()
        b.stop()
