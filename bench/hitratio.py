#!/usr/bin/env python3
"""Hit ratio of cdcache's own cache against reference eviction policies, on the same traces.

Ours: bench/hitratio (C, the real src/cache.c) replays each trace at 64 shards (the production
count, config.example.yaml) and unsharded. References: libcachesim (the libCacheSim authors' Python
bindings, pinned and installed by scripts/bench-tools.sh into its own venv; this script re-runs
itself with that venv's Python when libcachesim is not importable). Both read the very same
requests: bench/hitratio writes the synthetic traces in libCacheSim's oracleGeneral format.

Traces: zipf0.8, zipf0.99, zipf1.2 (100k keys, 2M requests), scan (Zipf 0.99 with a one-time scan
of 5,000 new keys every 20,000 requests), shift (Zipf 0.99 whose hot set moves every 250k
requests). Sizes: 0.1%, 1% and 10% of the 100k-key space. A real-world trace: neither libcachesim
nor any other installable PyPI package ships one (libcachesim's wheel holds no data, its readers
fetch traces from a remote bucket at run time; PyMimircache's sdist, which once carried sample
traces, no longer builds on a current Python). Any oracleGeneral file can be added with
--trace FILE (its sizes are then fractions of its distinct objects).

Output: a markdown table on stdout, per (trace, size): ours configured with 64 shards (and how
many it kept: the cache gives each shard at least 64 KiB of its bound), ours unsharded, each
reference, the best reference, ours@64 minus the best in points, and the target "within 1 point"
(PASS/FAIL). --json FILE writes the same rows as JSON; --plot FILE.png a gnuplot chart. Exit code 0,
or with --check 1 when any row FAILs.

Usage (what bench/run.py calls, from the repository root):
    python3 bench/hitratio.py --build "$BENCH_BUILD" --json OUT.json --plot OUT.png
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SYNTHETIC = ["zipf0.8", "zipf0.99", "zipf1.2", "scan", "shift"]
SYNTHETIC_KEYS = 100_000  # bench/hitratio.c's NKEYS: sizes are fractions of this key space
SIZES = [0.001, 0.01, 0.1]
SHARDS = 64
TARGET_POINTS = 1.0  # ours@64 may trail the best reference by at most this many points


def ensure_libcachesim():
    """Imports libcachesim, re-executing this script under the bench venv's Python if needed."""
    try:
        import libcachesim  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("HITRATIO_REEXEC"):
        sys.exit("hitratio.py: libcachesim is not importable even in the bench venv "
                 "(scripts/bench-tools.sh)")
    tools = os.path.join(ROOT, "scripts", "bench-tools.sh")
    subprocess.run([tools], check=True)
    out = subprocess.run([tools, "paths"], check=True, capture_output=True, text=True).stdout
    py = out.strip().split("=", 1)[1]
    os.environ["HITRATIO_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def references():
    import libcachesim as lcs
    # The policies the issue names, with libCacheSim's default parameters.
    return {
        "lru": lcs.LRU,
        "arc": lcs.ARC,
        "sieve": lcs.Sieve,
        "s3fifo": lcs.S3FIFO,
        "wtinylfu": lcs.WTinyLFU,
        "twoq": lcs.TwoQ,
    }


def distinct_objects(path):
    import numpy as np
    rec = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    return int(np.unique(np.fromfile(path, dtype=rec)["id"]).size)


def ours(binary, path, shards, caps):
    out = subprocess.run([binary, "replay", path, str(shards)] + [str(c) for c in caps],
                         check=True, capture_output=True, text=True).stdout
    # "CAP HIT_RATIO SHARDS_USED" per line
    return {int(f[0]): (float(f[1]), int(f[2])) for f in (line.split() for line in out.splitlines())}


def run(args):
    import libcachesim as lcs
    binary = os.path.join(args.build, "bench", "hitratio")
    if not os.access(binary, os.X_OK):
        sys.exit(f"hitratio.py: {binary} is missing (ninja -C {args.build})")
    tmp = tempfile.mkdtemp(prefix="cdcache-hitratio-")
    rows = []
    try:
        subprocess.run([binary, "write-traces", tmp], check=True, capture_output=True)
        traces = [(name, os.path.join(tmp, name + ".oracleGeneral"), SYNTHETIC_KEYS)
                  for name in SYNTHETIC]
        for extra in args.trace:
            traces.append((os.path.basename(extra).split(".")[0], extra, distinct_objects(extra)))
        refs = references()
        for name, path, keys in traces:
            caps = [max(1, int(keys * s)) for s in SIZES]
            o64 = ours(binary, path, SHARDS, caps)
            o1 = ours(binary, path, 1, caps)
            reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
            for size, cap in zip(SIZES, caps):
                r = {}
                for pname, cls in refs.items():
                    miss, _ = cls(cap).process_trace(reader)
                    r[pname] = 1.0 - miss
                best = max(r, key=r.get)
                delta = 100.0 * (o64[cap][0] - r[best])
                rows.append({"trace": name, "size_pct": 100 * size, "cap": cap,
                             "ours_64": o64[cap][0], "shards_used": o64[cap][1],
                             "ours_1": o1[cap][0], "refs": r, "best": best,
                             "best_ratio": r[best], "delta_points": delta,
                             "pass": delta >= -TARGET_POINTS})
                print(f"hitratio: {name} {100 * size:g}% done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def markdown(rows):
    names = list(rows[0]["refs"]) if rows else []
    head = (["trace", "size", "entries", f"ours@{SHARDS} (shards used)", "ours@1"] + names +
            ["best ref", f"ours@{SHARDS} − best (points)", f"within {TARGET_POINTS:g} point"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["trace"], f"{r['size_pct']:g}%", str(r["cap"]),
                 f"{r['ours_64']:.3f} ({r['shards_used']})", f"{r['ours_1']:.3f}"]
        cells += [f"{r['refs'][n]:.3f}" for n in names]
        cells += [f"{r['best']} {r['best_ratio']:.3f}", f"{r['delta_points']:+.1f}",
                  "PASS" if r["pass"] else "FAIL"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, png):
    if not shutil.which("gnuplot"):
        print("hitratio.py: gnuplot missing, no plot", file=sys.stderr)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for r in rows:
            f.write(f"{r['trace']}/{r['size_pct']:g}% {r['ours_64']} {r['ours_1']} {r['best_ratio']}\n")
        dat = f.name
    try:
        subprocess.run(["gnuplot", "-e",
                        f"set terminal pngcairo size 1400,500; set output '{png}';"
                        "set title 'Hit ratio: cdcache against the best libcachesim reference';"
                        "set style data histograms; set style histogram clustered; set style fill solid;"
                        "set yrange [0:1]; set key outside; set xtics rotate by -45;"
                        f"plot '{dat}' u 2:xtic(1) t 'ours, {SHARDS} shards', '' u 3 t 'ours, unsharded',"
                        " '' u 4 t 'best reference'"], check=True)
    finally:
        os.unlink(dat)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BENCH_BUILD")
                    or os.environ.get("CDCACHE_BUILD") or os.path.join(ROOT, "build"))
    ap.add_argument("--trace", action="append", default=[],
                    help="an extra oracleGeneral trace file (sizes relative to its distinct objects)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--plot", help="also draw the figures to this PNG (gnuplot)")
    ap.add_argument("--check", action="store_true", help="exit 1 when any row misses the target")
    args = ap.parse_args()
    ensure_libcachesim()
    rows = run(args)
    print(markdown(rows))
    failed = [r for r in rows if not r["pass"]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} within {TARGET_POINTS:g} point of the best "
          f"reference at {SHARDS} shards.")
    if args.json:
        import libcachesim
        with open(args.json, "w") as f:
            json.dump({"shards": SHARDS, "target_points": TARGET_POINTS,
                       "libcachesim": getattr(libcachesim, "__version__", None) or
                       __import__("importlib.metadata").metadata.version("libcachesim"),
                       "rows": rows}, f, indent=1)
    if args.plot:
        plot(rows, args.plot)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
