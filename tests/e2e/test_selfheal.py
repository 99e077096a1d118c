"""Self-healing (issue 9): scripts/stack.sh runs every part of the native stack under supervisord, so a part
that dies comes back by itself, with no command typed.

The module runs its own stack (2 replicas, nginx) and kill -9s, one after the other, PostgreSQL's postmaster,
Redis, Debezium Server's java, a replica and nginx's master, while a writer POSTs and PATCHes through nginx.
For each kill it measures how long until the part answers its own health check again (psql SELECT 1, an
authenticated Redis PING, Debezium's /q/health, the replica's /health, nginx's /health from a new master), and
how long until a change made in PostgreSQL reaches every replica. At the end, every write that nginx
acknowledged (2xx) must be in PostgreSQL, and Redis's ACL LOG must show no command denied to Debezium's or the
replicas' users across all the restarts."""
import os
import signal
import subprocess
import threading
import time

import pytest

from harness import Stack, metric, report, request, wait_until

PARTS = "pg redis debezium replicas nginx"


@pytest.fixture(scope="module")
def sh():
    # nginx as the balancer (LB=nginx): its master is among the processes killed
    s = Stack(parts=PARTS, replicas=2, env={"CDCACHE_HEARTBEAT_MS": "200", "LB": "nginx"}).up()
    yield s
    s.down()


# ---------------------------------------------------------------- helpers
def read_pid(path, first_line=False):
    try:
        with open(path) as f:
            text = f.readline() if first_line else f.read()
        pid = int(text.strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return 0


def urls(sh):
    return sh.vars["REPLICA_URLS"].split(",")


def pg_ok(sh):
    r = subprocess.run(["psql", "-X", "-tA", "-h", "127.0.0.1", "-p", sh.pg_port, "-U", "postgres", "-d", "cdcache",
                        "-c", "SELECT 1"], capture_output=True, text=True, timeout=10,
                       env=dict(os.environ, PGCONNECT_TIMEOUT="2"))
    return r.returncode == 0 and r.stdout.strip() == "1"


def redis_ok(sh):
    r = subprocess.run(["redis-cli", "--no-auth-warning", "-p", sh.redis_port, "PING"], capture_output=True,
                       text=True, timeout=10, env=dict(os.environ, REDISCLI_AUTH=sh.redis_password))
    return r.stdout.strip() == "PONG"


def http_ok(base, path="/health"):
    try:
        return request(base, "GET", path, timeout=2).status == 200
    except OSError:
        return False


def debezium_ok(sh):
    port = [line.split("=", 1)[1].strip() for line in open(os.path.join(sh.dir, "ports.env"))
            if line.startswith("debezium_http=")][0]
    return http_ok(f"http://127.0.0.1:{port}", "/q/health")


def applied(base):
    try:
        return metric(base, "cdcache_cdc_events_applied_total")
    except (OSError, KeyError, ValueError):
        return None


def change_reaches_every_replica(sh, item_id, timeout):
    """Every replica ready; a plain-SQL update of item_id; then until every replica has applied a change
    event more than before it (the replicas' applied counters)."""
    for base in urls(sh):
        wait_until(lambda: http_ok(base, "/ready"), timeout, interval=0.1, what=f"{base} ready")
    before = {base: wait_until(lambda: applied(base), 10, what="metrics") for base in urls(sh)}
    wait_until(lambda: pg_ok(sh), timeout, interval=0.1, what="PostgreSQL")
    sh.psql(f"UPDATE inventory.items SET price = price + 1 WHERE id = {item_id}")
    wait_until(lambda: all((applied(b) or 0) > before[b] for b in urls(sh)), timeout, interval=0.1,
               what="a change to reach every replica")


class Writer(threading.Thread):
    """POSTs and PATCHes through nginx until stopped; remembers every acknowledged write."""

    def __init__(self, lb):
        super().__init__(daemon=True)
        self.lb = lb
        self.stop_ev = threading.Event()
        self.acked = {}  # item id -> the highest version a 2xx answer reported
        self.attempts = self.failed = self.acknowledged = 0
        self.error = None

    def run(self):
        n = 0
        try:
            while not self.stop_ev.is_set():
                n += 1
                self.attempts += 1
                try:
                    if not self.acked or n % 3 == 0:
                        r = request(self.lb, "POST", "/items",
                                    {"name": f"heal-{n}", "description": "self-heal", "price": "1.00"}, timeout=10)
                    else:
                        ids = list(self.acked)
                        item = ids[n % len(ids)]
                        r = request(self.lb, "PATCH", f"/items/{item}", {"description": f"write {n}"}, timeout=10)
                    if 200 <= r.status < 300:
                        body = r.json()
                        self.acked[body["id"]] = max(self.acked.get(body["id"], 0), body["version"])
                        self.acknowledged += 1
                    else:
                        self.failed += 1
                except OSError:
                    self.failed += 1
                self.stop_ev.wait(0.02)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join(30)


def kill_and_time(sh, name, pidfile, healthy, first_line=False, timeout=120):
    """kill -9 of the part's process; returns (pid, seconds until a new process is healthy)."""
    pid = read_pid(pidfile, first_line)
    assert pid, f"{name}: no running process in {pidfile}"
    assert sh.program_pid(name) == pid, f"{name}: pid {pid} is not supervisord's program"
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def back():
        new = read_pid(pidfile, first_line)
        return new and new != pid and healthy()

    wait_until(back, timeout, interval=0.05, what=f"{name} back after kill -9 (no command typed)")
    return t0, time.monotonic() - t0


# ---------------------------------------------------------------- the test
def test_every_part_comes_back_by_itself_after_kill_9_and_no_acknowledged_write_is_lost(sh):
    lb = sh.vars["CDCACHE_URL"]
    d = sh.dir
    probe = request(lb, "POST", "/items", {"name": "probe", "description": "self-heal probe", "price": "1.00"})
    assert probe.status == 201, probe
    probe_id = probe.json()["id"]
    change_reaches_every_replica(sh, probe_id, 60)

    writer = Writer(lb)
    writer.start()
    kills = [
        ("pg", os.path.join(d, "pg", "data", "postmaster.pid"), lambda: pg_ok(sh), True),
        ("redis", os.path.join(d, "redis", "redis.pid"), lambda: redis_ok(sh), False),
        ("debezium", os.path.join(d, "debezium", "debezium.pid"), lambda: debezium_ok(sh), False),
        ("replica-1", os.path.join(d, "replica-1", "cdcache.pid"), lambda: http_ok(urls(sh)[0]), False),
        ("nginx", os.path.join(d, "nginx", "nginx.pid"), lambda: http_ok(lb), False),
    ]
    results = []
    try:
        time.sleep(1)  # some writes before the first kill
        for name, pidfile, healthy, first_line in kills:
            t0, back = kill_and_time(sh, name, pidfile, healthy, first_line)
            change_reaches_every_replica(sh, probe_id, 120)
            results.append((name, back, time.monotonic() - t0))
            time.sleep(1)  # writes in the healthy state between kills
    finally:
        writer.stop()
    assert writer.error is None, writer.error

    # every part is supervisord's and running; nothing was started by hand
    def all_running():
        states = {line.split()[0]: line.split()[1] for line in sh.supervisorctl("status").splitlines() if line.split()}
        return all(states.get(p) == "RUNNING" for p in ("pg", "redis", "debezium", "replica-1", "replica-2", "nginx"))
    wait_until(all_running, 30, interval=0.5, what=f"every program RUNNING: {sh.supervisorctl('status')}")
    # the killed nginx master's workers did not stay behind: every nginx worker belongs to the new master
    master = read_pid(os.path.join(d, "nginx", "nginx.pid"))
    workers = subprocess.run(["pgrep", "-f", "^nginx: worker process"], capture_output=True, text=True).stdout.split()
    ours = [int(w) for w in workers if os.path.realpath(f"/proc/{w}/cwd") == os.path.realpath(os.path.join(d, "nginx"))]
    for w in ours:
        with open(f"/proc/{w}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == master, f"nginx worker {w} left from a killed master"

    # 0 lost acknowledged writes
    assert writer.acked, "no write was acknowledged"
    ids = ",".join(str(i) for i in writer.acked)
    rows = dict(tuple(map(int, line.split("|"))) for line in
                sh.psql(f"SELECT id, version FROM inventory.items WHERE id IN ({ids})").splitlines())
    lost = [f"{i} (acked v{v}, found {rows.get(i)})" for i, v in writer.acked.items() if rows.get(i, 0) < v]
    assert not lost, f"acknowledged writes lost: {lost}"

    # Debezium and the replicas reconnected as their ACL users and were denied nothing
    acl_log = sh.redis("ACL", "LOG")
    assert "cdcache-debezium" not in acl_log and "cdcache-replica" not in acl_log, acl_log

    figures = ", ".join(f"{n} {b:.1f}s / {p:.1f}s" for n, b, p in results)
    report("e2e", f"e2e self-heal: kill -9, then back by itself / a change on every replica: {figures}; "
                  f"{writer.attempts} writes through nginx ({writer.acknowledged} acknowledged on {len(writer.acked)} "
                  f"items, {writer.failed} failed during the kills), 0 acknowledged writes lost")
