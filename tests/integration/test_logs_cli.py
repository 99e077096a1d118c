"""Logs and the command line (issue 10): JSON lines when stderr is not a terminal (time, level, msg, replica and
fields), a readable format on request, a sampled access log, X-Request-Id on every answer (the client's when
valid, a new one otherwise), and `--help` that prints usage and starts nothing."""
import json
import os
import re
import socket
import subprocess

import pytest

from harness import CDCACHE, Replica, free_port, request, wait_until
from test_consistency import sql_insert


def access_lines(lines):
    return [line for line in lines if line.get("msg") == "access"]


def json_lines(r):
    text = r.read_log()
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))  # every line parses, or the test fails here
    return out


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["help"], ["serve", "--help"], ["serve", "--config", "x.yaml", "-h"],
                                  ["migrate", "--help"], ["check-config", "--help"], ["help", "serve"]])
def test_help_prints_usage_and_starts_nothing(argv, tmp_path):
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'http:\n  listen: "127.0.0.1:{port}"\n')
    argv = [a if a != "x.yaml" else str(cfg) for a in argv]
    env = dict(os.environ, CDCACHE_HTTP_LISTEN=f"127.0.0.1:{port}")
    r = subprocess.run([CDCACHE, *argv], capture_output=True, text=True, timeout=10, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: cdcache"), r.stdout
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "--help started a server"


def test_version_and_unknown_commands():
    r = subprocess.run([CDCACHE, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.fullmatch(r"cdcache \d+\.\d+\.\d+\n", r.stdout), r.stdout
    r = subprocess.run([CDCACHE, "nosuch", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_check_config_names_a_bad_log_format(tmp_path):
    r = subprocess.run([CDCACHE, "check-config"], capture_output=True, text=True, timeout=10,
                       env=dict(os.environ, CDCACHE_LOG_FORMAT="xml"))
    assert r.returncode == 2 and "log.format" in r.stderr, r.stderr
    r = subprocess.run([CDCACHE, "check-config"], capture_output=True, text=True, timeout=10,
                       env=dict(os.environ, CDCACHE_LOG_ACCESS_SAMPLE_PERCENT="101"))
    assert r.returncode == 2 and "log.access_sample_percent" in r.stderr, r.stderr


def test_logs_are_json_lines_with_an_access_log_and_request_ids(stack, heartbeats):
    r = Replica(stack, "it-logs", env={"CDCACHE_LOG_ACCESS_SAMPLE_PERCENT": "100"}).start()
    try:
        item = sql_insert(stack, "logs")
        # the client's own id is echoed and logged with the request
        got = r.get(f"/items/{item}", headers={"X-Request-Id": "client-id.42:abc"})
        assert got.status == 200 and got.header("X-Request-Id") == "client-id.42:abc"
        # a cache hit (the one-write path) carries one too
        wait_until(lambda: r.get(f"/items/{item}").header("X-Cache") == "hit", 15, what="a hit")
        hit = r.get(f"/items/{item}", headers={"X-Request-Id": "hit-1"})
        assert hit.header("X-Cache") == "hit" and hit.header("X-Request-Id") == "hit-1"
        # none, or one that is not valid: a new id (16 hex digits), different each time
        ids = set()
        for hdrs in ({}, {"X-Request-Id": "has space"}, {"X-Request-Id": "x" * 129}, {"X-Request-Id": "a\"b"}):
            rid = r.get(f"/items/{item}", headers=hdrs).header("X-Request-Id")
            assert rid and re.fullmatch(r"[0-9a-f]{16}", rid), (hdrs, rid)
            ids.add(rid)
        assert len(ids) == 4
        # errors, conditional answers, writes and ops endpoints carry one as well
        etag = hit.header("ETag")
        for path, hdrs, status in (("/items/abc", {}, 400), ("/nope", {}, 404),
                                   (f"/items/{item}", {"If-None-Match": etag}, 304),
                                   ("/health", {}, 200), ("/items?limit=1", {}, 200)):
            a = r.get(path, headers=hdrs)
            assert a.status == status and a.header("X-Request-Id"), (path, a.status, a.headers)
        w = r.call("PATCH", f"/items/{item}", {"description": "logged"})
        assert w.status == 200 and w.header("X-Request-Id")

        def logged():
            return [a for a in access_lines(json_lines(r)) if a.get("request_id") == "client-id.42:abc"]
        wait_until(logged, 10, what="the access line of the request")
        lines = json_lines(r)
        for line in lines:
            assert {"time", "level", "msg", "replica"} <= set(line), line
            assert line["replica"] == "it-logs" and line["level"] in ("debug", "info", "warn", "error")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
        a = logged()[0]
        assert a["method"] == "GET" and a["route"] == "GET /items/{id}" and a["path"] == f"/items/{item}"
        assert a["status"] == 200 and isinstance(a["duration_us"], int) and a["cache"] in ("hit", "miss", "bypass")
        assert any(x["route"] == "GET /items/{id}" and x["status"] == 400 for x in access_lines(lines))
        assert any(x["cache"] == "hit" and x["request_id"] == "hit-1" for x in access_lines(lines))
        assert any(x["method"] == "PATCH" and x["status"] == 200 for x in access_lines(lines))
        assert any("serving on" in x["msg"] for x in lines), "the start line is a JSON line too"
    finally:
        r.stop()


def test_text_format_and_no_access_log_when_sampling_is_off(stack, heartbeats):
    r = Replica(stack, "it-logs-text", env={"CDCACHE_LOG_FORMAT": "text",
                                             "CDCACHE_LOG_ACCESS_SAMPLE_PERCENT": "0"}).start()
    try:
        for _ in range(20):
            assert r.get("/items?limit=1").status == 200
        r.get("/items/1", headers={"X-Request-Id": "never-logged"})
        text = r.read_log()
        assert "serving on" in text and "never-logged" not in text and " access " not in text
        for line in text.splitlines():
            if line.strip():
                assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) ", line), line
                with pytest.raises(json.JSONDecodeError):
                    json.loads(line)
    finally:
        r.stop()


def test_access_log_samples(stack, heartbeats):
    r = Replica(stack, "it-logs-sample", env={"CDCACHE_LOG_ACCESS_SAMPLE_PERCENT": "10"}).start()
    try:
        for _ in range(400):
            request(r.url, "GET", "/health")
        n = len([a for a in access_lines(json_lines(r)) if a["route"] == "GET /health"])
        assert 5 <= n <= 120, f"{n} of 400 requests logged at 10%"
    finally:
        r.stop()
