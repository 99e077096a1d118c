#!/usr/bin/env python3
"""Warm start under load (issue 15, "Warm at once, without a storm").

Starts a throwaway native stack (PostgreSQL, Redis, Debezium Server, 2 replicas; scripts/stack.sh with
free-picked ports), seeds --keys items, and sends a Zipf(--zipf) read load at --rate requests/s spread
over both replicas (keep-alive clients straight to each replica, so the restarted one gets its share as
soon as it accepts). After --steady seconds it measures the steady state (replica 1's hit ratio, and
PostgreSQL's transaction rate from pg_stat_database.xact_commit), restarts replica 1 under supervisord,
and reports:

  - warm time: from replica 1's /ready turning 200 until its hit ratio (1 s windows, hits over hit + miss +
    bypass reads) is at least 0.9x its steady value (target <= 3 s);
  - PostgreSQL's transaction rate over the first 10 s after replica 1 answers /health again, relative to
    the steady rate (target <= 3x);
  - time from the restart until /ready is 200 (the warm-up holds it, at most warm.ready_deadline_ms).

Prints a markdown table with the targets beside, and with --json FILE writes the figures as JSON.
--no-warm runs the same with warm.enabled false (CDCACHE_WARM_ENABLED=false): today's behaviour.

For bench/run.py:  python3 bench/warm.py --json <dir>/warm.json   (BENCH_BUILD / CDCACHE_BUILD pick the
build, default build-bench; about 90 s: Debezium's start, --steady 25 s, --after 20 s).
"""
import argparse
import bisect
import http.client
import json
import os
import random
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "pylib"))
os.environ.setdefault("CDCACHE_BUILD", os.environ.get("BENCH_BUILD", "build-bench"))
from harness import Stack, request, wait_until  # noqa: E402

TARGET_WARM_S = 3.0
TARGET_PG_X = 3.0


def zipf_cdf(n, s):
    w = [1.0 / (k ** s) for k in range(1, n + 1)]
    total = sum(w)
    acc, cdf = 0.0, []
    for x in w:
        acc += x / total
        cdf.append(acc)
    return cdf


class Load:
    """Open-loop-ish readers: each thread keeps its share of the rate on one keep-alive connection to its
    replica, reconnecting after errors (a restarting replica refuses for a while)."""

    def __init__(self, urls, ids, cdf, rate, threads_per_replica=3):
        self.stop = threading.Event()
        self.errors = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.threads = []
        per = rate / (len(urls) * threads_per_replica)
        for u in urls:
            hostport = u.split("//", 1)[1]
            for t in range(threads_per_replica):
                th = threading.Thread(target=self.run, args=(hostport, ids, cdf, per, random.Random(t)),
                                      daemon=True)
                self.threads.append(th)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, hostport, ids, cdf, rate, rnd):
        host, port = hostport.split(":")
        conn = None
        gap = 1.0 / rate
        nxt = time.monotonic()
        while not self.stop.is_set():
            nxt += gap
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=5)
                i = ids[bisect.bisect_left(cdf, rnd.random())]
                conn.request("GET", f"/items/{i}")
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.requests += 1
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.05)
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()  # behind: no burst to catch up

    def halt(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def reads(url):
    """Replica url's item reads by X-Cache (hit, miss, bypass), or None when it does not answer."""
    try:
        text = request(url, "GET", "/metrics", timeout=2).body.decode()
    except OSError:
        return None
    out = {"hit": 0.0, "miss": 0.0, "bypass": 0.0}
    for m in re.finditer(r'^cdcache_item_reads_total\{x_cache="(\w+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def ratio(a, b):
    """Hit ratio between two reads() samples."""
    d = {k: b[k] - a[k] for k in b}
    n = d["hit"] + d["miss"] + d["bypass"]
    return d["hit"] / n if n > 0 else None, n


def xacts(stack):
    return int(stack.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))


def status(url, path):
    try:
        return request(url, "GET", path, timeout=1).status
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=10000, help="items seeded (default 10000)")
    ap.add_argument("--zipf", type=float, default=0.99)
    ap.add_argument("--rate", type=float, default=1500, help="reads/s over both replicas (default 1500)")
    ap.add_argument("--steady", type=float, default=40, help="seconds of load before the restart")
    ap.add_argument("--after", type=float, default=20, help="seconds measured after the restart")
    ap.add_argument("--no-warm", action="store_true", help="warm.enabled false: the cold start of before")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()

    env = {"LOG_LEVEL": "warn", "PG_FSYNC": "off"}
    if os.geteuid() == 0:  # as bench/run.py: the pipeline ahead of the load on shared cores
        env["PIPELINE_RT"] = "1"
    if a.no_warm:
        env["CDCACHE_WARM_ENABLED"] = "false"
    stack = Stack(parts="pg redis debezium replicas", replicas=2, env=env).up()
    load = None
    try:
        urls = stack.vars["REPLICA_URLS"].split(",")
        r1 = urls[0]
        stack.psql(f"INSERT INTO inventory.items (name, description, price) SELECT 'bench' || g, "
                   f"'zipf', 1.00 FROM generate_series(1, {a.keys}) g")
        ids = [int(x) for x in stack.psql("SELECT id FROM inventory.items ORDER BY id").split()]
        random.Random(15).shuffle(ids)  # the hottest keys spread over the key space
        cdf = zipf_cdf(len(ids), a.zipf)
        for u in urls:
            wait_until(lambda u=u: (request(u, "GET", "/ready").json()["checks"]["cdc"]
                                    .get("serving_from_cache")), 120, what="serving from the cache")
        load = Load(urls, ids, cdf, a.rate).start()
        time.sleep(max(a.steady - 10, 1))
        s0, x0, t0 = reads(r1), xacts(stack), time.monotonic()
        time.sleep(10)
        s1, x1, t1 = reads(r1), xacts(stack), time.monotonic()
        steady_hit, _ = ratio(s0, s1)
        steady_reads = {k: s1[k] - s0[k] for k in s1}
        steady_tps = (x1 - x0) / (t1 - t0)

        t_restart = time.monotonic()
        r = stack.supervisorctl("restart", "replica-1")
        # supervisorctl returns once the new process runs; /health then /ready
        t_health = t_ready = None
        samples = []  # (t, reads)
        xs = []  # (t, xact_commit)
        end = None
        last_x = 0.0
        while end is None or time.monotonic() < end:
            now = time.monotonic()
            if t_health is None and status(r1, "/health") == 200:
                t_health = now
                xs.append((now, xacts(stack)))
                last_x = now
            if t_health is not None and t_ready is None and status(r1, "/ready") == 200:
                t_ready = now
                end = now + a.after
            if t_health is not None:
                s = reads(r1)
                if s:
                    samples.append((now, s))
                if now - last_x >= 1.0:
                    xs.append((now, xacts(stack)))
                    last_x = now
            if now - t_restart > 120:
                raise RuntimeError("replica 1 not ready within 120 s of its restart")
            time.sleep(0.1)
        # warm time: the first 1 s window after ready whose hit ratio is >= 0.9 x steady
        warm_s = None
        for i, (t, s) in enumerate(samples):
            if t < t_ready:
                continue
            j = i
            while j + 1 < len(samples) and samples[j + 1][0] - t < 1.0:
                j += 1
            if j + 1 < len(samples):
                j += 1
            hr, n = ratio(s, samples[j][1])
            if hr is not None and n >= 10 and hr >= 0.9 * steady_hit:
                warm_s = max(0.0, t - t_ready)
                break
        # PostgreSQL's rate in the first 10 s after /health
        x_first = [p for p in xs if p[0] - t_health <= 10.5]
        first_tps = ((x_first[-1][1] - x_first[0][1]) / (x_first[-1][0] - x_first[0][0])
                     if len(x_first) >= 2 and x_first[-1][0] > x_first[0][0] else None)
        warm_metrics = {}
        try:
            text = request(r1, "GET", "/metrics").body.decode()
            for m in re.finditer(r"^(cdcache_warm_\w+) (\S+)$", text, re.M):
                warm_metrics[m.group(1)] = float(m.group(2))
        except OSError:
            pass
        # the hit ratio in consecutive 1 s windows from /ready on (for make bench's plot)
        timeline, k = [], 0
        while k < len(samples) and samples[k][0] < t_ready:
            k += 1
        while k < len(samples):
            j = k
            while j + 1 < len(samples) and samples[j][0] - samples[k][0] < 1.0:
                j += 1
            if j == k:
                break
            hr, _ = ratio(samples[k][1], samples[j][1])
            if hr is not None:
                timeline.append([round(samples[k][0] - t_ready, 2), hr])
            k = j
        res = {
            "timeline": timeline,
            "warm_enabled": not a.no_warm,
            "keys": a.keys, "zipf": a.zipf, "rate": a.rate,
            "steady_hit_ratio": steady_hit,
            "steady_pg_xact_per_s": steady_tps,
            "steady_reads_by_x_cache": steady_reads,
            "restart_to_ready_s": t_ready - t_restart,
            "ready_to_0_9x_steady_s": warm_s,
            "pg_xact_per_s_first_10s": first_tps,
            "pg_first_10s_over_steady": first_tps / steady_tps if first_tps and steady_tps else None,
            "load_errors": load.errors,
            "warm_metrics": warm_metrics,
            "targets": {"ready_to_0_9x_steady_s": TARGET_WARM_S, "pg_first_10s_over_steady": TARGET_PG_X},
        }
    finally:
        if load:
            load.halt()
        stack.down()

    def f(x, nd=2):
        return "n/a" if x is None else f"{x:.{nd}f}"

    ok_w = res["ready_to_0_9x_steady_s"] is not None and res["ready_to_0_9x_steady_s"] <= TARGET_WARM_S
    ok_p = res["pg_first_10s_over_steady"] is not None and res["pg_first_10s_over_steady"] <= TARGET_PG_X
    print(f"\n### Warm start ({'warm-up on' if res['warm_enabled'] else 'warm-up off'}; {a.keys} keys, "
          f"Zipf {a.zipf}, {a.rate:.0f} reads/s over 2 replicas)\n")
    print("| what | measured | target |")
    print("| --- | --- | --- |")
    print(f"| /ready 200 → hit ratio ≥ 0.9× steady ({f(steady_hit, 3)}) | "
          f"{f(res['ready_to_0_9x_steady_s'], 1) + ' s' if res['ready_to_0_9x_steady_s'] is not None else 'not within ' + str(a.after) + ' s'} "
          f"| ≤ {TARGET_WARM_S:.0f} s {'✓' if ok_w else '✗'} |")
    print(f"| PostgreSQL xact/s, first 10 s ÷ steady ({f(first_tps, 0)} / {f(steady_tps, 0)}) | "
          f"{f(res['pg_first_10s_over_steady'], 1)}× | ≤ {TARGET_PG_X:.0f}× {'✓' if ok_p else '✗'} |")
    print(f"| restart → /ready 200 | {f(res['restart_to_ready_s'], 1)} s | |")
    print(f"| warmed entries / batches / rejected | {warm_metrics.get('cdcache_warm_entries_total', 0):.0f} / "
          f"{warm_metrics.get('cdcache_warm_batches_total', 0):.0f} / "
          f"{warm_metrics.get('cdcache_warm_fill_rejections_total', 0):.0f} | |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
