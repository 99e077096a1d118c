"""Observability: /metrics passes promtool's checks, unknown figures are absent (not -1), the consumer names
its Redis connection, and the Grafana dashboard and Prometheus alert rules under deploy/ use only metric
names a replica really renders. `make observe` (scripts/observe.sh) is tested in test_observe.py."""
import json
import os
import re
import subprocess

import pytest

from conftest import xadd_change
from harness import CDCACHE, ROOT, Replica, free_port, request, wait_until

DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "cdcache.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")


def promtool(*args, stdin=None):
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True)


def metrics_text(url):
    r = request(url, "GET", "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def traffic(stack, replica):
    """Requests of every kind, so that every family the page renders has samples: hits, misses, a 404,
    a write, a change event, a poison entry."""
    r = replica.call("POST", "/items", {"name": "obs", "description": "d", "price": "1.50"})
    assert r.status == 201, r
    item = r.json()["id"]
    for _ in range(3):
        assert replica.get(f"/items/{item}").status == 200
    assert replica.get("/items/999999999").status == 404
    assert replica.get("/items?limit=2").status == 200
    assert replica.call("PATCH", f"/items/{item}", {"price": "2.00"}).status == 200
    xadd_change(stack, item)
    stack.redis("XADD", "cdcache.inventory.items", "*", "not json", "{")
    replica.get("/health")
    replica.get("/ready")
    return item


def series_names(text):
    """Every sample's series name and every family named by a TYPE line."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def samples(text):
    """(series with labels, value) of every sample line."""
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out.append((series, float(value)))
    return out


# ------------------------------------------------------------------ /metrics itself

def test_metrics_page_passes_promtool(stack, replica):
    traffic(stack, replica)
    # the poison entry and the change are applied by the consumer thread
    wait_until(lambda: replica.metric('cdcache_cdc_events_total{result="poison"}') >= 1, 30,
               what="the poison entry to be counted")
    text = metrics_text(replica.url)
    r = promtool("check", "metrics", stdin=text)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        f"promtool check metrics found:\n{r.stdout}{r.stderr}"
    # every family has HELP text
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert types - helps == set()


def test_build_info_and_process_metrics(stack, replica):
    text = metrics_text(replica.url)
    version = subprocess.run([CDCACHE, "--version"], capture_output=True, text=True).stdout.split()[-1]
    meson = open(os.path.join(ROOT, "meson.build")).read()
    assert version == re.search(r"version : '([^']+)'", meson).group(1)
    values = dict(samples(text))
    assert values.get(f'cdcache_build_info{{version="{version}"}}') == 1
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    for name, kind in [("process_cpu_seconds_total", "counter"), ("process_resident_memory_bytes", "gauge"),
                       ("process_virtual_memory_bytes", "gauge"), ("process_open_fds", "gauge"),
                       ("process_max_fds", "gauge"), ("process_start_time_seconds", "gauge"),
                       ("process_threads", "gauge")]:
        assert types.get(name) == kind, name
        assert name in values, name
    pid = replica.proc.pid
    # the figures are this process's, as /proc shows them
    assert abs(values["process_threads"] - len(os.listdir(f"/proc/{pid}/task"))) <= 2  # http.threads is 8
    assert values["process_threads"] >= 8
    assert values["process_open_fds"] >= 3
    limit = [line for line in open(f"/proc/{pid}/limits") if line.startswith("Max open files")][0].split()
    assert values["process_max_fds"] == float(limit[3])
    assert values["process_resident_memory_bytes"] > 1 << 20
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    started = os.stat(f"/proc/{pid}").st_mtime  # close to the process's start
    assert abs(values["process_start_time_seconds"] - started) < 120
    assert values["process_cpu_seconds_total"] >= 0


def test_unknown_figures_are_absent(stack):
    """A replica that cannot reach Redis knows no stream length and has never heard the pipeline: those
    figures are left out, never rendered as -1; the page still passes promtool."""
    dead = free_port()  # nothing listens there
    r = Replica(stack, "it-obs-unknown", env={"CDCACHE_REDIS_URL": f"redis://127.0.0.1:{dead}"}).start(
        wait_ready=False)
    try:
        wait_until(lambda: r.metric("cdcache_cdc_reconnects_total") >= 1 or "connect" in r.read_log(), 20,
                   what="the consumer to try Redis")
        text = metrics_text(r.url)
        negative = [(s, v) for s, v in samples(text) if v < 0]
        assert negative == [], f"unknown figures rendered as negative values: {negative}"
        names = series_names(text)
        assert "cdcache_stream_length" not in names
        assert "cdcache_cdc_lag_seconds" not in names
        assert "cdcache_stream_group_lag" not in names
        # this stack has no Debezium, so no slot: its status is known (missing), its WAL is not
        assert "cdcache_slot_retained_wal_bytes" not in names
        wait_until(lambda: 'cdcache_slot_wal_status{status="missing"} 1' in metrics_text(r.url), 30,
                   what="the slot to be looked up")
        # what is known is still there
        assert "cdcache_cdc_vouching" in names and "cdcache_cdc_attached" in names
        p = promtool("check", "metrics", stdin=text)
        assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr
    finally:
        r.stop()


def test_known_figures_appear_once_known(stack, replica):
    """The other side of absent-when-unknown: once attached and vouching, lag and stream length are there."""
    wait_until(lambda: "cdcache_cdc_lag_seconds" in series_names(metrics_text(replica.url)), 30,
               what="the lag to be rendered")
    wait_until(lambda: "cdcache_stream_length" in series_names(metrics_text(replica.url)), 60,
               what="the stream length to be rendered")
    wait_until(lambda: "cdcache_stream_group_lag" in series_names(metrics_text(replica.url)), 60,
               what="the group's lag to be rendered")
    values = dict(samples(metrics_text(replica.url)))
    assert values["cdcache_cdc_lag_seconds"] >= 0
    assert values["cdcache_stream_length"] >= 0
    assert values["cdcache_stream_group_lag"] >= 0


# ------------------------------------------------------------------ the consumer's Redis connection

def client_list(stack):
    out = []
    for line in stack.redis("CLIENT", "LIST").splitlines():
        out.append(dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv))
    return out


def test_consumer_names_its_redis_connection_on_every_connect(stack):
    r = Replica(stack, "it-obs-name").start()
    try:
        def named():
            return [c for c in client_list(stack) if c.get("name") == "cdcache-it-obs-name"]
        first = wait_until(named, 20, what="a Redis connection named cdcache-it-obs-name")
        assert len(first) == 1, first
        before = r.metric("cdcache_cdc_reconnects_total")
        assert stack.redis("CLIENT", "KILL", "ID", first[0]["id"]) == "1"
        again = wait_until(lambda: [c for c in named() if c["id"] != first[0]["id"]], 30,
                           what="the reconnected consumer to name its connection again")
        assert len(again) == 1, again
        assert r.metric("cdcache_cdc_reconnects_total") > before
    finally:
        r.stop()


# ------------------------------------------------------------------ dashboard and alert rules

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}


def promql_metric_names(expr):
    """The metric names an expression selects: identifiers that are not functions, keywords, label names or
    Grafana variables."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)            # strings (label values)
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)  # label lists
    e = re.sub(r"\$\{?\w+\}?", "", e)                        # Grafana variables ($__rate_interval)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or (m.start() > 0 and e[m.start() - 1].isdigit()):
            continue
        names.add(word)
    return names


def test_promql_name_extraction():
    assert promql_metric_names(
        'sum by (route) (rate(cdcache_http_requests_total{status=~"5.."}[$__rate_interval])) / '
        'clamp_min(sum(rate(cdcache_http_requests_total[5m])), 1)') == {"cdcache_http_requests_total"}
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(cdcache_cdc_propagation_seconds_bucket[5m]))) > 0.5 '
        'and on(instance) up == 1') == {"cdcache_cdc_propagation_seconds_bucket", "up"}


def live_names(stack, replica):
    traffic(stack, replica)
    wait_until(lambda: "cdcache_cdc_lag_seconds" in series_names(metrics_text(replica.url)), 30,
               what="the lag to be rendered")
    wait_until(lambda: "cdcache_stream_length" in series_names(metrics_text(replica.url)), 60,
               what="the stream length to be rendered")
    # the slot's figures come from PostgreSQL once Debezium's slot is looked up; this stack has no
    # Debezium, so they are named from the code that renders them (src/cdc.c)
    names = series_names(metrics_text(replica.url))
    src = open(os.path.join(ROOT, "src", "cdc.c")).read()
    for family in ("cdcache_slot_retained_wal_bytes", "cdcache_slot_wal_status"):
        assert f'"{family}"' in src
        names.add(family)
    names.add("up")  # made by Prometheus for every target
    return names


def test_dashboard_is_a_grafana_dashboard_of_real_metrics(stack, replica):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert isinstance(dash.get("title"), str) and dash["title"]
    assert isinstance(dash.get("uid"), str) and dash["uid"]
    assert isinstance(dash.get("schemaVersion"), int)
    variables = dash["templating"]["list"]
    ds = [v for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    assert ds, "a datasource variable of type prometheus"
    ds_name = ds[0]["name"]
    panels = dash["panels"]
    assert panels
    names, exprs, ids, titles = set(), [], set(), []
    for p in panels:
        assert isinstance(p.get("id"), int) and p["id"] not in ids, p.get("title")
        ids.add(p["id"])
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p.get("title")
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p.get("title")
        if p["type"] == "row":
            continue
        titles.append(p["title"])
        assert p["datasource"]["uid"] == f"${{{ds_name}}}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["refId"], p["title"]
            assert t.get("datasource", p["datasource"])["uid"] == f"${{{ds_name}}}", p["title"]
            exprs.append(t["expr"])
            names |= promql_metric_names(t["expr"])
    live = live_names(stack, replica)
    assert names - live == set(), f"dashboard expressions name metrics that no replica renders: {names - live}"
    # the panels the brief asks for
    used = " ".join(exprs)
    for must in ["cdcache_http_requests_total", "cdcache_http_request_duration_seconds_bucket",
                 "cdcache_item_reads_total", "cdcache_cache_bytes", "cdcache_cache_evictions_total",
                 "cdcache_cdc_propagation_seconds_bucket", "cdcache_cdc_vouching", "cdcache_cdc_events_poison_total",
                 "cdcache_slot_retained_wal_bytes", "cdcache_slot_wal_status"]:
        assert must in used, must


def alert_rules():
    import yaml  # python3-yaml comes with meson
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def test_alert_rules_pass_promtool_and_use_real_metrics(stack, replica):
    r = promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = alert_rules()
    assert all("alert" in x and x["annotations"].get("summary") and x["labels"].get("severity") for x in rules)
    names = set()
    for x in rules:
        names |= promql_metric_names(x["expr"])
    live = live_names(stack, replica)
    assert names - live == set(), f"alert expressions name metrics that no replica renders: {names - live}"
    alerts = {x["alert"] for x in rules}
    assert {"CdcacheReplicaDown", "CdcacheHigh5xxRatio", "CdcacheBypassingCache", "CdcachePropagationSlow",
            "CdcachePoisonEntries", "CdcacheContinuityBreaks", "CdcacheSlotWalRetainedHigh",
            "CdcacheSlotWalLost", "CdcacheStreamLag"} <= alerts
