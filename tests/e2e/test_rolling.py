"""Rolling restart under load (issue 9): `scripts/stack.sh rolling-restart` (make rolling-restart) restarts
every replica of the running stack, one at a time, while clients keep reading and writing through the public port (LB=kernel: the replicas share it; LB=nginx: nginx).
No request may fail: not a read, not a POST (which nginx may not pass to another replica once it has sent
it), and every write nginx acknowledged is in PostgreSQL afterwards. Each replica must really have been
restarted (a new process that exited 0 after its drain) and be serving through nginx again."""
import http.client
import json
import os
import re
import subprocess
import threading
import urllib.parse

from harness import ROOT, report, request, wait_until


class Client(threading.Thread):
    """One keep-alive client of nginx: creates items, reads them (item and list), PATCHes, PUTs and
    deletes them, in a loop, until stopped. Anything but the expected answer is a failure. Reads after a
    write carry X-Min-Version (read-your-writes across replicas; a plain read may be a replica behind)."""

    def __init__(self, lb, n):
        super().__init__(daemon=True)
        u = urllib.parse.urlsplit(lb)
        self.host, self.port, self.n = u.hostname, u.port, n
        self.stop_ev = threading.Event()
        self.requests = 0
        self.failures = []  # (method, path, status or error)
        self.acked = {}  # item id -> version of the last acknowledged write (None: deleted)
        self.conn = None

    def call(self, method, path, body=None, expect=(200,), min_version=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        if min_version is not None:
            hdrs["X-Min-Version"] = str(min_version)
        self.requests += 1
        try:
            self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            self.conn = None
            self.failures.append((method, path, repr(e)))
            return None, None
        if r.status not in expect:
            self.failures.append((method, path, r.status, data[:200]))
            return r.status, None
        return r.status, json.loads(data) if data else None

    def run(self):
        k = 0
        while not self.stop_ev.is_set():
            k += 1
            _, made = self.call("POST", "/items", {"name": f"roll-{self.n}-{k}", "description": "d", "price": "1.00"},
                                expect=(201,))
            if not made:
                continue
            item = made["id"]
            self.acked[item] = made["version"]
            self.call("GET", f"/items/{item}", min_version=made["version"])
            self.call("GET", "/items?limit=5")
            _, b = self.call("PATCH", f"/items/{item}", {"description": f"patched {k}"})
            if b:
                self.acked[item] = b["version"]
            _, b = self.call("PUT", f"/items/{item}", {"name": f"roll-{self.n}-{k}", "description": "put",
                                                       "price": "2.50"})
            if b:
                self.acked[item] = b["version"]
            _, b = self.call("GET", f"/items/{item}", min_version=self.acked[item])
            if b and b["version"] < self.acked[item]:
                self.failures.append(("GET", f"/items/{item}", "older than the version written", b))
            if k % 2 == 0:
                status, _ = self.call("DELETE", f"/items/{item}", expect=(204,))
                if status == 204:
                    self.acked[item] = None

    def stop(self):
        self.stop_ev.set()
        self.join(60)


def requests_served(base):
    text = request(base, "GET", "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cdcache_http_requests_total{") and 'route="GET /items"' in line)


def replica_pids(stack):
    out = stack.supervisorctl("status")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(replica-\d+)\s+RUNNING\s+pid (\d+)", out, re.M)}


def test_a_rolling_restart_under_load_fails_no_request(stack, lb):
    before = replica_pids(stack)
    assert len(before) >= 2, before
    clients = [Client(lb, n) for n in range(6)]
    for c in clients:
        c.start()
    wait_until(lambda: sum(c.requests for c in clients) >= 300, 60, what="load before the restart")
    r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "rolling-restart", stack.dir],
                       env=stack.env, capture_output=True, text=True, timeout=600)
    during = sum(c.requests for c in clients)
    wait_until(lambda: sum(c.requests for c in clients) >= during + 300, 60, what="load after the restart")
    for c in clients:
        c.stop()
    assert r.returncode == 0, r.stderr[-3000:]
    failures = [f for c in clients for f in c.failures]
    total = sum(c.requests for c in clients)
    after = replica_pids(stack)
    assert set(after) == set(before) and all(after[n] != before[n] for n in before), (before, after)
    log = open(os.path.join(stack.dir, "supervisord.log")).read()
    for n in before:
        assert re.search(rf"stopped: {n} \(exit status 0\)", log), f"{n} did not exit 0 after its drain"
    # nginx sends to every replica again: each one's request count moves under a few reads through it
    bases = stack.vars["REPLICA_URLS"].split(",")
    served = {b: requests_served(b) for b in bases}
    for _ in range(20):
        assert request(lb, "GET", "/items?limit=1").status == 200
    assert all(requests_served(b) > served[b] for b in bases), "a restarted replica gets no traffic from nginx"
    assert not failures, f"{len(failures)} of {total} requests failed: {failures[:10]}"
    # every acknowledged write is in PostgreSQL
    acked = {i: v for c in clients for i, v in c.acked.items()}
    rows = dict(tuple(map(int, line.split("|"))) for line in stack.psql(
        "SELECT id, version FROM inventory.items WHERE id IN (%s)" % ",".join(map(str, acked))).splitlines() if line)
    lost = [(i, v, rows.get(i)) for i, v in acked.items() if (v is None) != (i not in rows) or
            (v is not None and rows[i] < v)]
    assert not lost, f"acknowledged writes missing from PostgreSQL: {lost[:10]}"
    report("e2e", f"rolling restart of {len(before)} replicas under 6 keep-alive clients through the public port: {total} "
                  f"requests (POST, GET, list, PATCH, PUT, DELETE), 0 failed; {len(acked)} items, every "
                  "acknowledged write in PostgreSQL")
