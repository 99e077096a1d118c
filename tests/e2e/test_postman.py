"""The Postman collection (postman/), run by newman through scripts/postman.sh against the e2e stack's load
balancer: real Debezium Server, 2 replicas, nginx. It runs here, on the stack the other end-to-end tests
already started, rather than on one of its own: a second full stack would cost more than the collection."""
import json
import os
import subprocess
import tempfile
import time

from harness import ROOT, report

# The collection has 680 assertions (run without a token); far fewer would mean requests or scripts were lost.
MIN_ASSERTIONS = 650


def run_collection(url, token=None):
    with tempfile.TemporaryDirectory(prefix="cdcache-newman-") as tmp:
        export = os.path.join(tmp, "run.json")
        env = dict(os.environ)
        env.pop("CDCACHE_TOKEN", None)
        if token:
            env["CDCACHE_TOKEN"] = token
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(ROOT, "scripts", "postman.sh"), url, "--reporters", "cli,json",
                            "--reporter-json-export", export], capture_output=True, text=True, env=env,
                           timeout=600)
        seconds = time.monotonic() - t0
        run = json.load(open(export))["run"] if os.path.exists(export) else None
    return r, run, seconds


def test_postman_collection_passes_through_the_load_balancer(lb, stack):
    r, run, seconds = run_collection(lb, stack.vars.get("CDCACHE_TOKEN"))
    assert run is not None, f"newman wrote no report (exit {r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    stats = run["stats"]
    failures = [f"{f['source'].get('name', '?')}: {f['error'].get('test') or ''} {f['error']['message']}"
                for f in run["failures"]]
    assert not failures and r.returncode == 0, "\n".join(failures) + "\n" + r.stdout[-6000:]
    assert stats["assertions"]["total"] >= MIN_ASSERTIONS, stats
    assert stats["requests"]["failed"] == 0, stats
    report("postman", f"postman: newman ran {stats['requests']['total']} requests, "
                      f"{stats['assertions']['total']} assertions, {stats['assertions']['failed']} failed "
                      f"in {seconds:.1f}s")
