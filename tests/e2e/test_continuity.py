"""Continuity of the change stream on the real stack (issue 8): after each operational event below, no
replica serves a row older than the latest committed version once the staleness bound has passed, caching
resumes (X-Cache: hit with the current version), and a later change reaches every replica.

The module runs its own stack: a streaming standby (STANDBY=1, for the failover), 2 replicas, Debezium
heartbeats every 200 ms, and a short cdc.group_dead_after_ms, so that a partitioned replica's group is
removed by retention as it would be in production. Replicas are addressed directly (replica-1, replica-2);
only the writes of the failover test and the read-your-writes test go through nginx too."""
import os
import signal
import subprocess
import threading
import time

import pytest

from harness import ROOT, Stack, report, request, wait_until

MAX_STALENESS_S = 5.0  # scripts/stack.sh's default cdc.max_staleness_ms
BOUND_S = MAX_STALENESS_S + 1.0  # a version older than this after a newer commit is a violation
GROUP_DEAD_AFTER_MS = 3000
STREAMS = ["cdcache.inventory.items", "cdcache.inventory.cdcache_watermark", "__debezium-heartbeat.cdcache"]


@pytest.fixture(scope="module")
def cs():
    s = Stack(parts="pg redis debezium replicas nginx", replicas=2,
              env={"STANDBY": "1", "CDCACHE_HEARTBEAT_MS": "200",
                   "CDCACHE_CDC_GROUP_DEAD_AFTER_MS": str(GROUP_DEAD_AFTER_MS),
                   "CDCACHE_CDC_TRIM_INTERVAL_MS": "1000"}).up()
    yield s
    for d in ("pg", "pg-standby"):  # never leave a paused cluster behind (stack.sh down could not stop it)
        for pid in cluster_pids(s, d):
            os.kill(pid, signal.SIGCONT)
    s.down()


# ---------------------------------------------------------------- helpers
def urls(cs):
    return cs.vars["REPLICA_URLS"].split(",")


def lb(cs):
    return cs.vars["CDCACHE_URL"]


def name(cs, base):
    return f"replica-{urls(cs).index(base) + 1}" if base in urls(cs) else base


def stack_cmd(cs, cmd):
    r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), cmd, cs.dir], env=cs.env,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"stack.sh {cmd} failed:\n{r.stderr}\n{cs.logs()[-4000:]}"
    cs.load_env()
    return r.stderr


def replica_pid(cs, i):
    with open(os.path.join(cs.dir, f"replica-{i}", "cdcache.pid")) as f:
        return int(f.read())


def debezium_pid(cs):
    with open(os.path.join(cs.dir, "debezium", "debezium.pid")) as f:
        return int(f.read())


def cluster_pids(cs, folder):
    """The postmaster of DIR/<folder>/data and all its children (backends, walsenders, ...)."""
    try:
        with open(os.path.join(cs.dir, folder, "data", "postmaster.pid")) as f:
            pm = int(f.readline())
        os.kill(pm, 0)
    except (OSError, ValueError):
        return []
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
    return [pm] + [int(k) for k in kids]


def create(base, **fields):
    body = {"name": "c", "description": "continuity", "price": "1.00"}
    body.update(fields)
    r = request(base, "POST", "/items", body)
    assert r.status == 201, r
    return r.json()


def get(base, item_id, headers=None):
    return request(base, "GET", f"/items/{item_id}", headers=headers, timeout=30)


def version(r):
    return r.json()["version"] if r.status == 200 else None


def warm(cs, item_id, bases=None):
    """Every replica serves the item from its cache."""
    for base in bases or urls(cs):
        wait_until(lambda: get(base, item_id).header("x-cache") == "hit", 30, interval=0.1,
                   what=f"{name(cs, base)} to cache item {item_id}")


def sql_update(cs, item_id):
    """A plain-SQL update (no replica sees it but through the change stream); returns (version, when)."""
    v = int(cs.psql(f"UPDATE inventory.items SET price = price + 1 WHERE id = {item_id} RETURNING version"))
    return v, time.monotonic()


def redis_conns(cs, pid):
    """client addresses (ip:port) of pid's connections to Redis, as CLIENT LIST names them"""
    out = subprocess.run(["ss", "-Htnp", "dst", f"127.0.0.1:{cs.redis_port}"], capture_output=True,
                         text=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def kill_redis_conns(cs, pid):
    addrs = redis_conns(cs, pid)
    assert addrs, f"no Redis connection of pid {pid} found"
    for a in addrs:
        cs.redis("CLIENT", "KILL", "ADDR", a)
    return addrs


def last_item_entry(cs):
    out = cs.redis("XREVRANGE", STREAMS[0], "+", "-", "COUNT", "1").splitlines()
    return out[0] if out else ""


def assert_fresh_from_now_on(cs, item_id, want, committed, seconds=12.0, bases=None, what=""):
    """Polls every replica for `seconds`: an answer older than version `want` (or a 404) is a violation
    once `committed` (monotonic time of that commit) is more than BOUND_S ago. Then every replica must
    serve version >= want as a cache hit (caching resumed). 503s (a database failing over) are tolerated."""
    bases = bases or urls(cs)
    end = time.monotonic() + seconds
    fresh_hits, reads = set(), 0
    while time.monotonic() < end or len(fresh_hits) < len(bases):
        assert time.monotonic() < end + 30, \
            f"{what}: caching did not resume with version {want} on {sorted(set(bases) - fresh_hits)}"
        for base in bases:
            r = get(base, item_id)
            reads += 1
            age = time.monotonic() - committed
            stale = r.status == 404 or (r.status == 200 and version(r) < want)
            assert not (stale and age > BOUND_S), (
                f"{what}: {name(cs, base)} served item {item_id} at version {version(r)} ({r.status}, "
                f"X-Cache: {r.header('x-cache')}) {age:.1f}s after version {want} was committed "
                f"(bound {BOUND_S:.0f}s)")
            if r.status == 200 and r.header("x-cache") == "hit" and version(r) >= want:
                fresh_hits.add(base)
        time.sleep(0.05)
    return reads


def past_the_bound(cs, item_id, committed):
    """Waits until every replica has stopped vouching (bypass) and the commit is older than the bound:
    from then on, any answer older than that commit is a violation, with no grace."""
    for base in urls(cs):
        wait_until(lambda: get(base, item_id).header("x-cache") == "bypass", 20, interval=0.1,
                   what=f"{name(cs, base)} to bypass while Debezium is stopped")
    while time.monotonic() < committed + BOUND_S + 0.5:
        time.sleep(0.1)


def change_reaches_every_replica(cs, item_id, what=""):
    v, _ = sql_update(cs, item_id)
    for base in urls(cs):
        wait_until(lambda: (lambda r: r.status == 200 and r.header("x-cache") == "hit" and version(r) >= v)(
            get(base, item_id)), 30, interval=0.1, what=f"{what}: version {v} to reach {name(cs, base)}")
    return v


# ---------------------------------------------------------------- tests
def test_create_read_your_writes_across_replicas(cs):
    a, b = urls(cs)
    for _ in range(5):
        # the id the next create gets; replica B caches it as absent (a negative entry)
        nxt = int(cs.psql("SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM inventory.items_id_seq"))
        wait_until(lambda: (lambda r: r.status == 404 and r.header("x-cache") == "hit")(get(b, nxt)), 20,
                   interval=0.1, what="replica-2 to cache a 404")
        # Debezium paused, so that only X-Min-Version (not the insert's change event) can make B right
        os.kill(debezium_pid(cs), signal.SIGSTOP)
        try:
            w = request(a, "POST", "/items", {"name": "c", "description": "created", "price": "1.00"})
            assert w.status == 201, w
            if w.json()["id"] != nxt:
                continue
            assert w.header("etag") == '"1"', w
            r = get(b, nxt, headers={"X-Min-Version": "1"})
            assert r.status == 200 and version(r) == 1, \
                f"replica-2 answered {r.status} (X-Cache: {r.header('x-cache')}) to X-Min-Version: 1 after the create"
            answers = [get(lb(cs), nxt, headers={"X-Min-Version": "1"}).status for _ in range(8)]
            assert answers == [200] * 8, f"through nginx: {answers}"
            break
        finally:
            os.kill(debezium_pid(cs), signal.SIGCONT)
    else:
        pytest.fail("the created id never matched the predicted one")
    report("e2e", "e2e continuity: create then X-Min-Version: 1 on a replica holding a cached 404: 200")


def test_partition_from_redis_past_group_dead_after(cs):
    a, b = urls(cs)
    item = create(a)
    warm(cs, item["id"])
    pid = replica_pid(cs, 2)
    os.kill(pid, signal.SIGSTOP)  # replica-2 behind a partition: silent, its connection dropped
    try:
        killed = kill_redis_conns(cs, pid)
        for s in STREAMS:  # what retention does to a replica silent past group_dead_after_ms
            cs.redis("XGROUP", "DESTROY", s, "cdcache-replica-2")
        v, committed = sql_update(cs, item["id"])
        wait_until(lambda: (lambda r: r.header("x-cache") == "hit" and version(r) == v)(get(a, item["id"])), 30,
                   interval=0.1, what="replica-1 to apply the change")
        # past group_dead_after_ms and past the staleness bound: from the resume on, no old version at all
        while time.monotonic() < committed + BOUND_S + 0.5:
            time.sleep(0.1)
    finally:
        os.kill(pid, signal.SIGCONT)
    reads = assert_fresh_from_now_on(cs, item["id"], v, committed, what="after the partition from Redis")
    change_reaches_every_replica(cs, item["id"], "after the partition from Redis")
    report("e2e", f"e2e continuity: partition from Redis (connections {', '.join(killed)} killed, group removed): "
                  f"{reads} reads, none stale")


def test_xtrim_maxlen_0(cs):
    """An operator's XTRIM MAXLEN 0 removes an entry replica-2 had been delivered (pending in its group)
    but never applied: its connection broke before the reply reached it (simulated: replica-2 paused, its
    connection killed, the entry read as replica-2's consumer)."""
    a, b = urls(cs)
    item = create(a)
    warm(cs, item["id"])
    pid = replica_pid(cs, 2)
    before = last_item_entry(cs)
    os.kill(pid, signal.SIGSTOP)
    try:
        kill_redis_conns(cs, pid)  # first, so that no reply of replica-2's own can carry the change
        v, committed = sql_update(cs, item["id"])
        wait_until(lambda: last_item_entry(cs) != before, 20, interval=0.05, what="the change in the stream")
        claimed = cs.redis("XREADGROUP", "GROUP", "cdcache-replica-2", "replica-2", "COUNT", "100", "STREAMS",
                           STREAMS[0], ">")
        assert f'"id":{item["id"]}' in claimed, claimed
        assert cs.redis("XTRIM", STREAMS[0], "MAXLEN", "0") != "0"
        assert cs.redis("XLEN", STREAMS[0]) == "0"
    finally:
        os.kill(pid, signal.SIGCONT)
    reads = assert_fresh_from_now_on(cs, item["id"], v, committed, what="after XTRIM MAXLEN 0")
    change_reaches_every_replica(cs, item["id"], "after XTRIM MAXLEN 0")
    report("e2e", f"e2e continuity: XTRIM MAXLEN 0 past a pending entry: {reads} reads, none stale")


def test_flushall(cs):
    """FLUSHALL removes the streams (with a change replica-2 has not read yet), every group and Debezium's
    offsets while everything keeps running; replica-2, paused and cut off from Redis at that moment, then
    reconnects."""
    a, b = urls(cs)
    item = create(a)
    warm(cs, item["id"])
    pid = replica_pid(cs, 2)
    os.kill(pid, signal.SIGSTOP)
    try:
        kill_redis_conns(cs, pid)  # first, so that no reply of replica-2's own can carry the change
        v, committed = sql_update(cs, item["id"])
        wait_until(lambda: (lambda r: r.header("x-cache") == "hit" and version(r) == v)(get(a, item["id"])), 30,
                   interval=0.1, what="replica-1 to apply the change")
        assert cs.redis("FLUSHALL") == "OK"
    finally:
        os.kill(pid, signal.SIGCONT)
    reads = assert_fresh_from_now_on(cs, item["id"], v, committed, what="after FLUSHALL")
    change_reaches_every_replica(cs, item["id"], "after FLUSHALL")
    # Debezium kept its position in memory and wrote its offsets again
    wait_until(lambda: cs.redis("EXISTS", "metadata:debezium:offsets") == "1", 20, what="Debezium's offsets")
    report("e2e", f"e2e continuity: FLUSHALL with a change unread by a paused replica: {reads} reads, none stale")


def test_source_reset(cs):
    item = create(urls(cs)[0])
    warm(cs, item["id"])
    cs.stop_part("debezium")
    try:
        # the update lies in WAL that the reset slot will never stream
        v, committed = sql_update(cs, item["id"])
        past_the_bound(cs, item["id"], committed)
    finally:
        out = stack_cmd(cs, "reset-source")  # drops slot cdcache, deletes the offsets, starts Debezium
    assert "dropping slot cdcache" in out, out
    reads = assert_fresh_from_now_on(cs, item["id"], v, committed, seconds=20, what="after the source reset")
    change_reaches_every_replica(cs, item["id"], "after the source reset")
    report("e2e", f"e2e continuity: source reset (slot dropped, offsets deleted): {reads} reads, none stale")


def test_postgresql_failover(cs):
    x = create(urls(cs)[0])
    y = create(urls(cs)[0])
    warm(cs, x["id"])
    warm(cs, y["id"])
    old_primary, standby = cs.vars["PG_PORT"], cs.vars["PG_STANDBY_PORT"]
    cs.stop_part("debezium")
    try:
        # only physical replication carries this change to the new primary
        v, committed = sql_update(cs, x["id"])
        lsn = cs.psql("SELECT pg_current_wal_lsn()")
        replayed = ["psql", "-X", "-tA", "-h", "127.0.0.1", "-p", standby, "-U", "postgres", "-d", "cdcache", "-c",
                    f"SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{lsn}') >= 0"]
        wait_until(lambda: subprocess.run(replayed, capture_output=True, text=True).stdout.strip() == "t", 30,
                   interval=0.1, what="the standby to replay the update")
        past_the_bound(cs, x["id"], committed)
    finally:
        out = stack_cmd(cs, "failover")
    assert cs.vars["PG_PORT"] == standby and cs.vars["PG_STANDBY_PORT"] == old_primary, cs.vars
    assert "standby promoted" in out, out
    reads = assert_fresh_from_now_on(cs, x["id"], v, committed, seconds=15, what="after the failover")
    # writes through nginx reach the new primary (the replicas reconnect: target_session_attrs=read-write)
    created = wait_until(lambda: (lambda r: r if r.status == 201 else None)(
        request(lb(cs), "POST", "/items", {"name": "after", "description": "failover", "price": "2.00"})),
        30, interval=0.2, what="a write through nginx after the failover")
    w = wait_until(lambda: (lambda r: r if r.status == 200 else None)(
        request(lb(cs), "PATCH", f"/items/{y['id']}", {"description": "written after the failover"})),
        30, interval=0.2, what="an update through nginx after the failover")
    wv = int(w.header("etag").strip('"'))
    for base in urls(cs):
        r = get(base, y["id"], headers={"X-Min-Version": str(wv)})
        assert r.status == 200 and r.json()["description"] == "written after the failover", (name(cs, base), r)
    assert cs.psql(f"SELECT count(*) FROM inventory.items WHERE id = {created.json()['id']}") == "1"
    change_reaches_every_replica(cs, x["id"], "a change on the new primary")
    report("e2e", f"e2e continuity: PostgreSQL failover (standby promoted, slot recreated, replicas kept running): "
                  f"{reads} reads, none stale")


def test_partition_from_postgresql(cs):
    """Last: it stops and restarts replica-1. PostgreSQL is paused (SIGSTOP: connections stay open, nothing
    answers), so only client-side timeouts can end a read."""
    base = urls(cs)[0]
    # (a replica may hold pooled connections that broke in an earlier test: they fail once each)
    item = wait_until(lambda: (lambda r: r.json() if r.status == 201 else None)(
        request(base, "POST", "/items", {"name": "p", "description": "partition", "price": "1.00"})),
        30, interval=0.2, what="a write on replica-1")
    pid = replica_pid(cs, 1)
    paused = [p for d in ("pg", "pg-standby") for p in cluster_pids(cs, d)]
    assert paused
    results = {}

    def read(key, path, headers):
        t0 = time.monotonic()
        try:
            r = request(base, "GET", path, headers=headers, timeout=25)
            results[key] = (r.status, time.monotonic() - t0)
        except OSError as e:
            results[key] = (f"no answer ({e.__class__.__name__})", time.monotonic() - t0)

    exited_after = None
    for p in paused:
        os.kill(p, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=read, args=("no-cache", f"/items/{item['id']}",
                                                       {"Cache-Control": "no-cache"})),
                   threading.Thread(target=read, args=("cold", "/items/999999999999", None))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # SIGTERM must end the process within its drain time, even with requests stuck on the database
        os.kill(pid, signal.SIGTERM)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                exited_after = time.monotonic() - t0
                break
            time.sleep(0.1)
    finally:
        for p in paused:
            os.kill(p, signal.SIGCONT)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        cs.run_part("replicas")  # the module's stack stays usable
    problems = [f"{k}: {s} after {t:.1f}s" for k, (s, t) in sorted(results.items()) if s != 503 or t >= 15]
    if exited_after is None:
        problems.append("SIGTERM: still running after 20s")
    elif exited_after >= 15:
        problems.append(f"SIGTERM: exited after {exited_after:.1f}s")
    assert not problems, "with PostgreSQL unreachable: " + "; ".join(problems)
    report("e2e", "e2e continuity: PostgreSQL paused: reads that need it got 503 in "
                  + ", ".join(f"{t:.1f}s" for _, t in results.values()) + f"; SIGTERM exit in {exited_after:.1f}s")
