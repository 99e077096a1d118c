#!/usr/bin/env python3
"""How far one change stream fans out (docs/scaling.md). usage: BENCH_BUILD=build-bench python3 bench/fanout.py
Writes bench/results/fanout-<date>.json and prints it. About 6 minutes; FANOUT_QUICK=1 for a short pass.

A throwaway native stack (PostgreSQL, Redis, Debezium Server; no SCHED_RR: the machine is shared), then:
 A. drain: ENTRIES recorded update envelopes in one stream, read to the end by G consumer groups at once
    (G = 1, 2, 4, 8, 16), each by its own bench/xread_ceiling process (the replica's XREADGROUP + XACK
    pattern, nothing applied): aggregate entries/s and Redis's CPU time per delivered entry;
 B. Debezium's write rate: pgbench updates as fast as 4 clients can for 20 s; rows/s committed, rows/s
    Debezium appended to the stream (XLEN sampled), and how long the backlog took to drain;
 C. live fan-out: G real replicas (G = 1, 4, 16) on the stream while pgbench writes RATE rows/s for 15 s:
    Redis's CPU share, the replicas' commit-to-applied p50/p99 (cdcache_cdc_propagation_seconds), events
    applied per replica.
"""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "pylib"))
os.environ.setdefault("CDCACHE_BUILD", os.environ.get("BENCH_BUILD", "build-bench"))
from harness import BUILD, Replica, Stack, request, wait_until  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import hist_quantile as quantile, propagation_hist as hist, pgbench_path, xadd_updates  # noqa: E402

QUICK = os.environ.get("FANOUT_QUICK") == "1"
ENTRIES = 50000 if QUICK else 200000
GROUPS = [1, 2, 4, 8, 16]
LIVE_GROUPS = [1, 4] if QUICK else [1, 4, 16]
RATE = 2000
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"fanout: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def drain(stack, redis_pid, upd):
    stream = "bench.fanout"
    w = xadd_updates(stack, stream, upd, ENTRIES)
    out = {}
    env = dict(os.environ, REDISCLI_AUTH=stack.redis_password)
    for g in GROUPS:
        runs = []
        for rnd in range(1 if QUICK else 3):
            names = [f"g{g}-{rnd}-{i}" for i in range(g)]
            for n in names:
                w.call("XGROUP", "CREATE", stream, n, "0")
            c0, t0 = cpu_seconds(redis_pid), time.monotonic()
            procs = [subprocess.Popen([os.path.join(BUILD, "bench", "xread_ceiling"), stack.redis_port, stream, n,
                                       "512"], env=env, stdout=subprocess.PIPE, text=True) for n in names]
            outs = [p.communicate()[0] for p in procs]
            wall, cpu = time.monotonic() - t0, cpu_seconds(redis_pid) - c0
            got = sum(int(re.match(r"(\d+) entries", o).group(1)) for o in outs)
            assert got == g * ENTRIES, outs
            runs.append({"wall_s": wall, "entries_per_s": got / wall, "redis_cpu_s": cpu,
                         "redis_cpu_us_per_entry": cpu / got * 1e6, "redis_cpu_share": cpu / wall})
            for n in names:
                w.call("XGROUP", "DESTROY", stream, n)
        med = sorted(runs, key=lambda r: r["entries_per_s"])[len(runs) // 2]
        med["runs_entries_per_s"] = [round(r["entries_per_s"]) for r in runs]
        out[g] = med
        log(f"drain, {g} groups: {med['entries_per_s']:,.0f} entries/s, Redis "
            f"{med['redis_cpu_us_per_entry']:.2f} us/entry, {med['redis_cpu_share']:.2f} of a core")
    w.call("DEL", stream)
    w.close()
    return out


def xlen(stack, stream="cdcache.inventory.items"):
    return int(stack.redis("XLEN", stream) or 0)


def debezium_rate(stack, redis_pid, first, keys):
    script = os.path.join(tempfile.mkdtemp(), "update.sql")
    with open(script, "w") as f:
        f.write(f"\\set id random({first}, {first + keys - 1})\n"
                "UPDATE inventory.items SET price = price + 0.01 WHERE id = :id;\n")
    dbz_pid = stack.program_pid("debezium")
    secs = 10 if QUICK else 20
    start_len = xlen(stack)
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic(), xlen(stack)))
            stop.wait(0.25)

    t = threading.Thread(target=sample)
    c = [cpu_seconds(redis_pid), cpu_seconds(dbz_pid)]
    t0 = time.monotonic()
    t.start()
    r = subprocess.run([pgbench_path(), "-n", "-h", "127.0.0.1", "-p", stack.pg_port, "-U", "postgres", "-c", "4",
                        "-j", "2", "-T", str(secs), "-f", script, "cdcache"], capture_output=True, text=True)
    t_end = time.monotonic()
    committed = int(re.search(r"number of transactions actually processed: (\d+)", r.stdout).group(1))
    wait_until(lambda: xlen(stack) - start_len >= committed, 300, interval=0.25, what="Debezium backlog")
    t_done = time.monotonic()
    stop.set()
    t.join()
    cpu = [cpu_seconds(redis_pid) - c[0], cpu_seconds(dbz_pid) - c[1]]
    during = [n for ts, n in samples if ts <= t_end]
    streamed_during = (during[-1] - start_len) if during else 0
    # Debezium's own rate: entries appended per second while it had a backlog (first to last growth)
    grow = [(ts, n) for ts, n in samples if n > start_len]
    dbz_rate = (grow[-1][1] - grow[0][1]) / (grow[-1][0] - grow[0][0]) if len(grow) > 1 else None
    out = {"seconds": secs, "committed": committed, "committed_per_s": committed / (t_end - t0),
           "streamed_while_writing_per_s": streamed_during / (t_end - t0),
           "debezium_append_per_s": dbz_rate, "backlog_drained_s_after_writes": t_done - t_end,
           "redis_cpu_share": cpu[0] / (t_done - t0), "debezium_cpu_cores": cpu[1] / (t_done - t0),
           "debezium_rss_mib": status_kib(dbz_pid, "VmHWM") / 1024}
    log(f"Debezium: PostgreSQL committed {out['committed_per_s']:,.0f} rows/s, Debezium appended "
        f"{dbz_rate or 0:,.0f}/s, backlog drained {out['backlog_drained_s_after_writes']:.1f} s after")
    return out


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def live(stack, redis_pid, first, keys):
    script = os.path.join(tempfile.mkdtemp(), "update.sql")
    with open(script, "w") as f:
        f.write(f"\\set id random({first}, {first + keys - 1})\n"
                "UPDATE inventory.items SET price = price + 0.01 WHERE id = :id;\n")
    out = {}
    for g in LIVE_GROUPS:
        reps = [Replica(stack, f"fan{g}-{i}", extra_yaml="", env={"CDCACHE_LOG_LEVEL": "warn",
                                                                 "CDCACHE_HTTP_THREADS": "4"}) for i in range(g)]
        for r in reps:
            r.start(wait_ready=False)
        for r in reps:
            wait_until(r._serving, 60, what="replica serving")
        before = [hist(r.url) for r in reps]
        applied0 = [r.metric("cdcache_cdc_events_applied_total") + r.metric("cdcache_cdc_events_ignored_total")
                    for r in reps]
        secs = 8 if QUICK else 15
        c0, t0 = cpu_seconds(redis_pid), time.monotonic()
        p = subprocess.run([pgbench_path(), "-n", "-h", "127.0.0.1", "-p", stack.pg_port, "-U", "postgres", "-c", "4",
                            "-j", "2", "-R", str(RATE), "-T", str(secs), "-f", script, "cdcache"],
                           capture_output=True, text=True)
        time.sleep(1)
        wall, cpu = time.monotonic() - t0, cpu_seconds(redis_pid) - c0
        committed = int(re.search(r"number of transactions actually processed: (\d+)", p.stdout).group(1))
        after = [hist(r.url) for r in reps]
        applied = [r.metric("cdcache_cdc_events_applied_total") + r.metric("cdcache_cdc_events_ignored_total") - a
                   for r, a in zip(reps, applied0)]
        p50 = [quantile(b, a, 0.5) for b, a in zip(before, after)]
        p99 = [quantile(b, a, 0.99) for b, a in zip(before, after)]
        for r in reps:
            r.stop()
        out[g] = {"rate": RATE, "committed": committed, "redis_cpu_share": cpu / wall,
                  "redis_cpu_us_per_delivery": cpu / max(committed * g, 1) * 1e6,
                  "p50_ms_max": max(x or 0 for x in p50), "p99_ms_max": max(x or 0 for x in p99),
                  "applied_min": min(applied), "applied_max": max(applied)}
        log(f"live, {g} replicas at {RATE}/s: Redis {out[g]['redis_cpu_share']:.3f} of a core, p99 "
            f"{out[g]['p99_ms_max']:.0f} ms (slowest replica), applied {min(applied)}-{max(applied)} of {committed}")
    return out


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({cpu}), shared with other work; load average at start {os.getloadavg()}; {redis_v}"


def main():
    with open(os.path.join(ROOT, "tests", "fixtures", "items-events.jsonl")) as f:
        upd = json.loads([json.loads(l)["fields"] for l in f][1][1])
    res = {"started": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "entries": ENTRIES}
    stack = Stack(parts="pg redis debezium", replicas=0, env={"LOG_LEVEL": "warn"}).up()
    try:
        redis_pid = stack.program_pid("redis")
        keys = 10000
        stack.psql("INSERT INTO inventory.items (name, description, price) SELECT 'item ' || g, "
                   f"'description ' || g, 1.00 FROM generate_series(1, {keys}) g")
        first = int(stack.psql("SELECT min(id) FROM inventory.items"))
        log("A: drain with N groups")
        res["drain"] = drain(stack, redis_pid, upd)
        log("B: Debezium's write rate")
        res["debezium"] = debezium_rate(stack, redis_pid, first, keys)
        log("C: live fan-out")
        res["live"] = live(stack, redis_pid, first, keys)
    finally:
        stack.down()
    res["load_average_end"] = os.getloadavg()
    path = os.path.join(HERE, "results", f"fanout-{datetime.date.today()}{'-quick' if QUICK else ''}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
