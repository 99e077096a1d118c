#!/usr/bin/env python3
"""cdcache consistency checker, after Meta's Polaris and Uber's Cache Inspector.

It runs a seeded workload against a real stack (3 replicas by default): writers change rows through the
API and with plain SQL (updates, deletes, re-inserts of deleted ids), while readers hammer every replica
directly. Every write gives the row a unique name, and the checker keeps each key's history of committed
states with the time each commit was acknowledged. Each read is judged as it completes:

  a read that starts at t0 violates the bound when it returns a state older than the newest state
  acknowledged at or before t0 - bound.

Acknowledgement times are taken when the write's response arrives, a little after the commit, which makes
the check lenient by the write's own latency (milliseconds), never stricter. A read's staleness is how
long before t0 the state it returned had been superseded (0 when it was current).

After the workload, the checker waits for the pipeline to settle and checks that every replica's answer
for every key equals its row in PostgreSQL byte for byte. It prints reads checked, violations and the
worst staleness, and exits non-zero on any violation or divergence.

  tests/consistency/checker.py --reads 20000 --seed 7            # starts its own throwaway stack
  tests/consistency/checker.py --reads 1000000 --faults          # kills Redis, Debezium, a replica
  tests/consistency/checker.py --stack .stack                    # uses a running stack instead
"""
import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
from harness import ROOT, Stack, request  # noqa: E402

ABSENT = "<absent>"


class History:
    """Per-key list of [ack_time or None, state]; one writer per key appends, readers scan."""

    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()

    def begin(self, state):
        with self.lock:
            self.entries.append([None, state])
            return len(self.entries) - 1

    def ack(self, i, t):
        with self.lock:
            self.entries[i][0] = t

    def abandon(self, i):
        with self.lock:
            self.entries[i][0] = -1.0  # never committed

    def judge(self, state, t0, bound):
        """Returns (violation, staleness_seconds, known)."""
        with self.lock:
            entries = [e for e in self.entries if e[0] != -1.0]
        newest_before_bound = -1
        newest_before_t0 = -1
        for i, (t, _) in enumerate(entries):
            if t is not None and t <= t0 - bound:
                newest_before_bound = i
            if t is not None and t <= t0:
                newest_before_t0 = i
        matches = [i for i, (_, s) in enumerate(entries) if s == state]
        if not matches:
            return False, 0.0, False
        i = max(matches)
        violation = i < newest_before_bound
        stale = 0.0
        if i < newest_before_t0:
            superseded = entries[i + 1][0]
            stale = max(0.0, t0 - superseded) if superseded is not None else 0.0
        return violation, stale, True


class Conn:
    """A keep-alive HTTP connection that reconnects on failure."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.c = None

    def get(self, path, headers=None):
        for attempt in range(2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.c.request("GET", path, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.getheader("X-Cache"), r.read()
            except (OSError, http.client.HTTPException):
                if self.c:
                    self.c.close()
                self.c = None
                if attempt == 1:
                    raise


class Psql:
    """One long-lived psql session; each statement's success is read back through RETURNING."""

    def __init__(self, port):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", str(port), "-U",
                                   "postgres", "-d", "cdcache"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.n = 0

    def run(self, sql):
        self.n += 1
        marker = f"__done_{self.n}"
        self.p.stdin.write(sql.rstrip(";") + ";\n\\echo " + marker + "\n")
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("psql exited")
            line = line.rstrip("\n")
            if line == marker:
                return out
            out.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


class Checker:
    def __init__(self, args, stack_vars, stack=None):
        self.args = args
        self.rng = random.Random(args.seed)
        self.vars = stack_vars
        self.stack = stack
        self.replicas = stack_vars["REPLICA_URLS"].split(",")
        self.lb = stack_vars.get("CDCACHE_URL") or self.replicas[0]
        self.pg_port = stack_vars["PG_PORT"]
        self.keys = []
        self.hist = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reads = self.violations = self.errors = self.unknown = 0
        self.worst = 0.0
        self.worst_detail = ""
        self.by_cache = {}
        self.writes = 0
        self.faults = []
        self.examples = []

    # ----------------------------------------------------------------- setup
    def seed_keys(self):
        for i in range(self.args.keys):
            name = f"seed-{i}-{self.args.seed}"
            r = request(self.lb, "POST", "/items", {"name": name, "description": "checker", "price": "1.00"})
            assert r.status == 201, r
            key = r.json()["id"]
            h = History()
            h.ack(h.begin(name), time.monotonic())
            self.keys.append(key)
            self.hist[key] = h

    # ----------------------------------------------------------------- writers
    def writer(self, w):
        rng = random.Random(self.args.seed * 1000 + w)
        mine = [k for i, k in enumerate(self.keys) if i % self.args.writers == w]
        absent = set()
        psql = Psql(self.pg_port)
        seq = 0
        try:
            while not self.stop.is_set():
                key = rng.choice(mine)
                h = self.hist[key]
                seq += 1
                token = f"k{key}-w{w}-{seq}"
                if key in absent:
                    i = h.begin(token)
                    ok = psql.run(f"INSERT INTO inventory.items (id, name, description, price) VALUES "
                                  f"({key}, '{token}', 'reinserted', 2.00) RETURNING 'ok'") == ["ok"]
                    if ok:
                        absent.discard(key)
                else:
                    op = rng.random()
                    if op < 0.45:
                        i = h.begin(token)
                        base = rng.choice(self.replicas + [self.lb])
                        try:
                            ok = request(base, "PATCH", f"/items/{key}", {"name": token}, timeout=10).status == 200
                        except OSError:
                            ok = None  # unknown outcome: the write may or may not have committed
                    elif op < 0.85:
                        i = h.begin(token)
                        ok = psql.run(f"UPDATE inventory.items SET name = '{token}' WHERE id = {key} "
                                      "RETURNING 'ok'") == ["ok"]
                    else:
                        i = h.begin(ABSENT)
                        if rng.random() < 0.5:
                            ok = psql.run(f"DELETE FROM inventory.items WHERE id = {key} RETURNING 'ok'") == ["ok"]
                        else:
                            try:
                                ok = request(rng.choice(self.replicas), "DELETE", f"/items/{key}",
                                             timeout=10).status == 204
                            except OSError:
                                ok = None
                        if ok:
                            absent.add(key)
                if ok:
                    h.ack(i, time.monotonic())
                    with self.lock:
                        self.writes += 1
                elif ok is None:
                    # Outcome unknown (a replica died mid-request): keep the state possible but never
                    # use it as the reference point; re-read the truth from PostgreSQL.
                    truth = psql.run(f"SELECT name FROM inventory.items WHERE id = {key}")
                    if truth == [token]:
                        h.ack(i, time.monotonic())
                    else:
                        h.abandon(i)
                else:
                    h.abandon(i)
                time.sleep(self.args.write_interval * rng.random() * 2)
        finally:
            psql.close()

    # ----------------------------------------------------------------- readers
    def reader(self, r):
        rng = random.Random(self.args.seed * 7919 + r)
        conns = {b: Conn(b) for b in self.replicas}
        while not self.stop.is_set():
            key = rng.choice(self.keys)
            base = rng.choice(self.replicas)
            t0 = time.monotonic()
            try:
                status, xc, body = conns[base].get(f"/items/{key}")
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                time.sleep(0.01)
                continue
            if status == 404:
                state = ABSENT
            elif status == 200:
                state = body.split(b'"name":"', 1)[1].split(b'"', 1)[0].decode()
            else:
                with self.lock:
                    self.errors += 1
                continue
            violation, stale, known = self.hist[key].judge(state, t0, self.args.bound)
            with self.lock:
                self.reads += 1
                self.by_cache[xc] = self.by_cache.get(xc, 0) + 1
                if not known:
                    self.unknown += 1
                if violation:
                    self.violations += 1
                    if len(self.examples) < 10:
                        self.examples.append(f"key {key} on {base} ({xc}) returned {state!r} "
                                             f"{stale:.3f}s after it was superseded")
                if stale > self.worst:
                    self.worst = stale
                    self.worst_detail = f"key {key} on {base} (X-Cache: {xc})"
                if self.args.reads and self.reads >= self.args.reads:
                    self.stop.set()

    # ----------------------------------------------------------------- faults
    def fault_loop(self):
        rng = random.Random(self.args.seed + 99)
        kinds = ["redis", "debezium", "replica"]
        while not self.stop.wait(self.args.fault_every):
            kind = kinds[len(self.faults) % len(kinds)]
            t = time.monotonic()
            if kind == "replica":
                n = rng.randrange(len(self.replicas)) + 1
                self.restart_replica(n)
                kind = f"replica-{n}"
            else:
                self.stack.stop_part(kind)
                time.sleep(1.0)
                self.stack.run_part(kind)
            self.faults.append(f"{kind} killed and restarted ({time.monotonic() - t:.1f}s)")
            print(f"checker: fault: {self.faults[-1]}", file=sys.stderr)

    def restart_replica(self, n):
        d = os.path.join(self.stack.dir, f"replica-{n}")
        with open(os.path.join(d, "cdcache.pid")) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        time.sleep(0.5)
        log = open(os.path.join(d, "cdcache.log"), "ab")
        p = subprocess.Popen([os.path.join(ROOT, os.environ.get("CDCACHE_BUILD", "build"), "cdcache"), "serve",
                              "--config", os.path.join(d, "config.yaml")], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        with open(os.path.join(d, "cdcache.pid"), "w") as f:
            f.write(str(p.pid))

    # ----------------------------------------------------------------- quiescence
    def converge(self, deadline=60.0):
        """Every replica's answer (cache or not) must equal PostgreSQL's row, byte for byte."""
        end = time.monotonic() + deadline
        while True:
            diverged = []
            for base in self.replicas:
                for key in self.keys:
                    a = request(base, "GET", f"/items/{key}")
                    b = request(base, "GET", f"/items/{key}", headers={"Cache-Control": "no-cache"})
                    if (a.status, a.body) != (b.status, b.body):
                        diverged.append(f"{base} key {key}: cached {a.status} {a.body[:80]!r} != row "
                                        f"{b.status} {b.body[:80]!r}")
            if not diverged or time.monotonic() > end:
                return diverged
            time.sleep(0.5)

    def run(self):
        self.seed_keys()
        threads = [threading.Thread(target=self.writer, args=(w,)) for w in range(self.args.writers)]
        threads += [threading.Thread(target=self.reader, args=(r,)) for r in range(self.args.readers)]
        if self.args.faults:
            threads.append(threading.Thread(target=self.fault_loop))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        if not self.args.reads:
            self.stop.wait(self.args.seconds)
            self.stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        # wait until every replica vouches again, then compare caches with rows
        for base in self.replicas:
            end = time.monotonic() + 90
            while request(base, "GET", "/ready").status != 200 and time.monotonic() < end:
                time.sleep(0.2)
        diverged = self.converge()
        cached = sum(v for k, v in self.by_cache.items() if k == "hit")
        lines = [
            f"consistency checker: seed {self.args.seed}, {len(self.replicas)} replicas, {len(self.keys)} keys, "
            f"bound {self.args.bound:.3f}s, faults {'on' if self.args.faults else 'off'}",
            f"  reads checked:    {self.reads} in {elapsed:.1f}s ({self.reads / max(elapsed, 1e-9):.0f}/s); "
            f"X-Cache {dict(sorted(self.by_cache.items(), key=lambda kv: str(kv[0])))}; "
            f"{cached / max(self.reads, 1):.0%} from cache",
            f"  writes:           {self.writes} (API and plain SQL: updates, deletes, re-inserts)",
            f"  violations:       {self.violations}",
            f"  worst staleness:  {self.worst * 1000:.1f} ms ({self.worst_detail or 'none'})",
            f"  read errors:      {self.errors} (connection failures during faults, not judged)",
            f"  diverged entries: {len(diverged)} after quiescence",
        ]
        for f in self.faults:
            lines.append(f"  fault: {f}")
        for e in self.examples:
            lines.append(f"  violation: {e}")
        for d in diverged[:10]:
            lines.append(f"  diverged: {d}")
        print("\n".join(lines))
        if self.args.report:
            with open(self.args.report, "a") as f:
                f.write("\n".join(lines) + "\n")
        return 1 if self.violations or diverged else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=0, help="stop after this many reads (default: --seconds)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bound", type=float, default=1.0, help="staleness bound in seconds")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--readers", type=int, default=6)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--write-interval", type=float, default=0.01, help="mean pause between writes (s)")
    ap.add_argument("--faults", action="store_true", help="kill and restart Redis, Debezium, a replica")
    ap.add_argument("--fault-every", type=float, default=8.0)
    ap.add_argument("--stack", help="use the running stack in this folder instead of starting one")
    ap.add_argument("--report", help="append the summary to this file")
    args = ap.parse_args()

    stack = None
    if args.stack:
        vars_ = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(args.stack, "stack.env"))
                     if "=" in l and not l.startswith("#"))
        if args.faults:
            stack = Stack(parts="", replicas=len(vars_["REPLICA_URLS"].split(",")))
            stack.dir = os.path.abspath(args.stack)
            stack.load_env()
    else:
        stack = Stack(parts="pg redis debezium replicas nginx", replicas=args.replicas,
                      env={"MAX_STALENESS_MS": str(int(args.bound * 1000 * 0.5)),
                           "CDCACHE_HEARTBEAT_MS": str(max(50, int(args.bound * 1000 * 0.1)))}).up()
        vars_ = stack.vars
    try:
        return Checker(args, vars_, stack).run()
    finally:
        if stack and not args.stack:
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
