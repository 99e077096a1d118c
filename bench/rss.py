#!/usr/bin/env python3
"""Measures one replica's memory (RSS) under load with its cache at the configured bound, using the
Kubernetes ConfigMap's configuration (deploy/k8s/configmap.yaml), to size the Deployment's memory request
and limit. usage: BENCH_BUILD=build-bench python3 bench/rss.py [ROWS] [SECONDS]

A throwaway native stack (PostgreSQL, Redis, Debezium Server) gets ROWS items (default 160000) with
descriptions of 500-3500 bytes, about 1.3 times cache.max_bytes (256 MiB) of rendered JSON, so the cache
fills and then evicts all along. One replica runs the ConfigMap's config.yaml (listen, conninfo and Redis
pointed at the stack). wrk reads every item in turn over 64 connections for SECONDS (default 60) while
pgbench updates 500 rows/s through the change stream. VmRSS is sampled every 0.5 s; VmHWM is the peak.
Prints one JSON object.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "pylib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("CDCACHE_BUILD", os.environ.get("BENCH_BUILD", "build-bench"))
from harness import Replica, Stack, wait_until  # noqa: E402
from run import pgbench_path  # noqa: E402

import yaml  # noqa: E402


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 160000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    with open(os.path.join(ROOT, "deploy", "k8s", "configmap.yaml")) as f:
        cfg = yaml.safe_load(yaml.safe_load(f)["data"]["config.yaml"])
    stack = Stack(parts="pg redis debezium", replicas=0, env={"LOG_LEVEL": "warn", "PG_FSYNC": "off"}).up()
    try:
        # rows before the replica starts: its group begins at the stream's end, so it reads them from
        # PostgreSQL (fills) and sees only the updates below as changes
        stack.psql("INSERT INTO inventory.items (name, description, price) SELECT 'item ' || g, "
                   "repeat(md5(g::text), (16 + (g * 7919) % 94)), (g % 10000) / 100.0 "
                   f"FROM generate_series(1, {rows}) g")
        first = int(stack.psql("SELECT min(id) FROM inventory.items"))
        cfg["http"]["listen"] = "127.0.0.1:0"  # replaced below by the harness's port
        cfg["http"].pop("admin_listen", None)
        cfg["postgres"]["conninfo"] = f"postgresql://postgres@127.0.0.1:{stack.pg_port}/cdcache"
        cfg["postgres"]["migrations_dir"] = os.path.join(ROOT, "migrations")
        pw = urllib.parse.quote(stack.secrets["REDIS_REPLICA_PASSWORD"], safe="")
        cfg["redis"]["url"] = f"redis://cdcache-replica:{pw}@127.0.0.1:{stack.redis_port}"
        cfg["log"]["level"] = "warn"
        r = Replica(stack, "rss")
        cfg["http"]["listen"] = f"127.0.0.1:{r.port}"
        cfg["cdc"]["replica_id"] = "rss"
        with open(r.config, "w") as f:
            yaml.safe_dump(cfg, f)
        r.start()
        pid = r.proc.pid
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.monotonic(), status(pid)["VmRSS"]))
                stop.wait(0.5)

        t = threading.Thread(target=sample)
        t.start()
        script = os.path.join(tempfile.mkdtemp(), "update.sql")
        with open(script, "w") as f:
            f.write(f"\\set id random({first}, {first + rows - 1})\n"
                    "UPDATE inventory.items SET price = price + 0.01 WHERE id = :id;\n")
        pgb = subprocess.Popen([pgbench_path(), "-n", "-h", "127.0.0.1", "-p", stack.pg_port, "-U", "postgres",
                                "-c", "2", "-j", "1", "-R", "500", "-T", str(seconds), "-f", script, "cdcache"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, WRK_KEYS=str(rows), WRK_FIRST=str(first))
        w = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--timeout", "5s", "-s",
                            os.path.join(HERE, "wrk.lua"), r.url], env=env, capture_output=True, text=True)
        pgb.wait()
        stop.set()
        t.join()
        m = re.search(r"RESULT (\d+) ([\d.]+)", w.stdout)
        st = status(pid)
        cache_bytes = r.metric("cdcache_cache_bytes")
        entries = r.metric("cdcache_cache_entries")
        applied = r.metric("cdcache_cdc_events_applied_total")
        tail = [s for ts, s in samples if ts >= samples[-1][0] - seconds / 3]
        out = {"rows": rows, "seconds": seconds, "reads": int(m.group(1)) if m else None,
               "reads_per_s": round(int(m.group(1)) / float(m.group(2))) if m else None,
               "bound_mib": 256, "cache_bytes_mib": round(cache_bytes / 2**20, 1), "entries": int(entries),
               "cdc_applied": int(applied), "threads": st["Threads"],
               "rss_peak_mib": round(st["VmHWM"] / 1024, 1), "rss_end_mib": round(st["VmRSS"] / 1024, 1),
               "rss_last_third_max_mib": round(max(tail) / 1024, 1)}
        print(json.dumps(out))
        r.stop()
    finally:
        stack.down()


if __name__ == "__main__":
    main()
