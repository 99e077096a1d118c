"""`make observe` (scripts/observe.sh) against a small native stack (PostgreSQL, Redis, 2 replicas; no Debezium):
Prometheus comes up on 127.0.0.1, scrapes every replica of stack.env, loads deploy/prometheus/alerts.yaml,
reloads on a second `up`, and stops on `down`. The stack's replicas connect to Redis as the ACL user
cdcache-replica, so this is also where their connection names are checked against that user's rights."""
import json
import os
import subprocess
import urllib.parse

import pytest
import yaml

from harness import ROOT, Stack, request, wait_until

OBSERVE = os.path.join(ROOT, "scripts", "observe.sh")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")


@pytest.fixture(scope="module")
def small_stack():
    s = Stack(parts="pg redis replicas", replicas=2).up()
    yield s
    subprocess.run([OBSERVE, "down", s.dir], capture_output=True, text=True)
    s.down()


def observe(stack, cmd):
    env = dict(os.environ, PROMETHEUS_PORT_BASE="0", SCRAPE_INTERVAL="1s")
    r = subprocess.run([OBSERVE, cmd, stack.dir], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def api(port, path):
    r = request(f"http://127.0.0.1:{port}", "GET", path, timeout=5)
    assert r.status == 200, r
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def test_observe_scrapes_every_replica_and_loads_the_rules(small_stack):
    r = observe(small_stack, "up")
    port = int([ln for ln in open(os.path.join(small_stack.dir, "ports.env")) if ln.startswith("prometheus=")][0]
               .strip().split("=")[1])
    assert f"http://127.0.0.1:{port}" in r.stdout, r.stdout  # where to look
    pid = int(open(os.path.join(small_stack.dir, "prometheus", "prometheus.pid")).read())

    replicas = {urllib.parse.urlsplit(u).netloc for u in small_stack.vars["REPLICA_URLS"].split(",")}
    assert len(replicas) == 2

    def targets_up():
        try:
            active = api(port, "/api/v1/targets")["activeTargets"]
        except (OSError, ValueError):
            return False
        up = {t["labels"]["instance"] for t in active if t["labels"]["job"] == "cdcache" and t["health"] == "up"}
        return up == replicas and active
    active = wait_until(targets_up, 90, interval=0.5, what="Prometheus to scrape both replicas")
    assert {t["labels"]["replica"] for t in active} == {"replica-1", "replica-2"}

    with open(ALERTS) as f:
        want = {x["alert"] for g in yaml.safe_load(f)["groups"] for x in g["rules"]}

    def rules_loaded():
        groups = api(port, "/api/v1/rules")["groups"]
        rules = [x for g in groups for x in g["rules"]]
        return rules if {x["name"] for x in rules} == want and all(x["health"] == "ok" for x in rules) else None
    rules = wait_until(rules_loaded, 60, interval=0.5, what="the alert rules to be loaded and evaluated")
    assert all(x["type"] == "alerting" for x in rules)

    # the replicas' own figures reached it
    def build_info():
        res = api(port, "/api/v1/query?query=" + urllib.parse.quote("cdcache_build_info"))["result"]
        return res if len(res) == 2 else None
    res = wait_until(build_info, 60, interval=0.5, what="cdcache_build_info from both replicas")
    assert {x["metric"]["instance"] for x in res} == replicas

    # a second `up` reloads the running Prometheus rather than starting another
    r = observe(small_stack, "up")
    assert "reloaded" in r.stderr, r.stderr
    assert int(open(os.path.join(small_stack.dir, "prometheus", "prometheus.pid")).read()) == pid
    assert api(port, "/api/v1/status/runtimeinfo")["reloadConfigSuccess"] is True

    observe(small_stack, "down")
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"), 20,
               what="Prometheus to exit")
    with pytest.raises(OSError):
        request(f"http://127.0.0.1:{port}", "GET", "/-/ready", timeout=2)
    observe(small_stack, "down")  # stopping twice is fine


def test_stack_replicas_name_their_redis_connections(small_stack):
    """The stack's replicas are the Redis ACL user cdcache-replica: CLIENT SETNAME is within its rights."""
    def names():
        out = set()
        for line in small_stack.redis("CLIENT", "LIST").splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields.get("user") == "cdcache-replica":
                out.add(fields.get("name"))
        return out if out == {"cdcache-replica-1", "cdcache-replica-2"} else None
    wait_until(names, 30, what="connections named cdcache-replica-1 and cdcache-replica-2")
    for i in (1, 2):
        log = open(os.path.join(small_stack.dir, f"replica-{i}", "cdcache.log")).read()
        assert "SETNAME" not in log, log[-2000:]
