"""The API's surface as openapi.yaml describes it: query parameters a route does not take are refused by
name, pages carry a Link header, CORS answers a preflight and the request that follows alike, the index
and the description are served, and requests civetweb refuses before routing still get problem+json."""
import json
import os
import socket
import subprocess

from harness import CDCACHE, ROOT, Replica, request

ORIGIN = "https://app.example.com"


def assert_problem(r, status, slug, field=None):
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    p = r.json()
    assert p["type"] == f"urn:cdcache:problem:{slug}" and p["status"] == status, p
    if field is not None:
        assert p.get("field") == field, p
    return p


def create(replica, name="n"):
    r = replica.call("POST", "/items", {"name": name, "description": "d", "price": "1.00"})
    assert r.status == 201, r
    return r.json()["id"]


def count_rows(stack):
    return int(stack.psql("SELECT count(*) FROM inventory.items"))


def test_unknown_and_repeated_query_parameters_are_refused_by_name(stack, replica):
    item = create(replica)
    p = assert_problem(replica.get("/items?sort=name"), 400, "invalid-query", "sort")
    assert "'sort'" in p["detail"] and "after and limit" in p["detail"], p
    p = assert_problem(replica.get("/items?limit=5&limit=6"), 400, "invalid-query", "limit")
    assert "twice" in p["detail"], p
    assert_problem(replica.get("/items?after=1&after=1"), 400, "invalid-query", "after")
    assert_problem(replica.get("/items?LIMIT=5"), 400, "invalid-query", "LIMIT")  # names are exact
    assert_problem(replica.get("/items?limit"), 400, "invalid-query", "limit")  # no value
    assert_problem(replica.get(f"/items/{item}?fields=name"), 400, "invalid-query", "fields")
    assert_problem(replica.get(f"/items/{item}?after=1"), 400, "invalid-query", "after")
    for path in ("/health?verbose=1", "/ready?full", "/metrics?name[]=x", "/?x=1", "/openapi.json?v=2"):
        field = path.split("?")[1].split("=")[0]
        assert_problem(replica.get(path), 400, "invalid-query", field)
    before = count_rows(stack)
    assert_problem(replica.call("POST", "/items?dry_run=1", {"name": "q", "description": "d", "price": 1}),
                   400, "invalid-query", "dry_run")
    assert_problem(replica.call("PATCH", f"/items/{item}?x=1", {"name": "q"}), 400, "invalid-query", "x")
    assert_problem(replica.call("DELETE", f"/items/{item}?force=1"), 400, "invalid-query", "force")
    assert count_rows(stack) == before and replica.get(f"/items/{item}").json()["name"] == "n", \
        "a refused request wrote nothing"
    # what is allowed: known names (percent-encoded too), empty segments, no query at all
    assert replica.get("/items?after=0&limit=2&").status == 200
    page = replica.get("/items?%6Cimit=1")
    assert page.status == 200 and len(page.json()["items"]) == 1, page
    assert replica.get(f"/items/{item}?").status == 200
    assert replica.get("/health").status == 200


def test_a_page_links_to_the_next_one(replica):
    ids = [create(replica, f"page-{i}") for i in range(5)]
    after = ids[0] - 1
    seen = []
    while True:
        r = replica.get(f"/items?after={after}&limit=2")
        assert r.status == 200, r
        body = r.json()
        seen += [it["id"] for it in body["items"]]
        if body["next"] is None:
            assert r.header("link") is None, r
            break
        assert r.header("link") == f'<{body["next"]}>; rel="next"', r
        assert "limit=2" in body["next"], "the next page keeps the limit"
        after = int(body["next"].split("after=")[1].split("&")[0])
    assert seen[:5] == ids


def cors_replica(stack, rid, origins):
    return Replica(stack, rid, env={"CDCACHE_HTTP_CORS_ORIGINS": origins}).start()


def test_cors_preflight_and_request_agree(stack, heartbeats):
    r = cors_replica(stack, "it-cors", f"{ORIGIN}, http://localhost:3000")
    try:
        item = create(r)
        pre = r.call("OPTIONS", f"/items/{item}", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, if-match, content-type"})
        assert pre.status == 204 and pre.body == b"", pre
        assert pre.header("access-control-allow-origin") == ORIGIN, pre
        methods = [m.strip() for m in pre.header("access-control-allow-methods").split(",")]
        assert {"GET", "PUT", "PATCH", "DELETE"} <= set(methods), pre
        allowed = {h.strip().lower() for h in pre.header("access-control-allow-headers").split(",")}
        assert {"authorization", "if-match", "if-none-match", "x-min-version", "content-type"} <= allowed
        assert "origin" in pre.header("vary").lower() and int(pre.header("access-control-max-age")) > 0

        for attempt in ("miss or hit", "hit"):  # the second read takes the cache-hit fast path
            got = r.get(f"/items/{item}", {"Origin": ORIGIN})
            assert got.status == 200, got
            assert got.header("access-control-allow-origin") == ORIGIN, (attempt, got)
            exposed = {h.strip().lower() for h in got.header("access-control-expose-headers").split(",")}
            assert {"etag", "x-cache", "link", "x-request-id", "retry-after"} <= exposed, got
            assert "origin" in got.header("vary").lower(), got
        assert got.header("x-cache") == "hit"
        # errors are readable too, and the list page and writes carry the same answer
        assert r.get("/items/999999999", {"Origin": ORIGIN}).header("access-control-allow-origin") == ORIGIN
        assert r.get("/items?limit=1", {"Origin": ORIGIN}).header("access-control-allow-origin") == ORIGIN
        w = r.call("PATCH", f"/items/{item}", {"name": "x"}, {"Origin": "http://localhost:3000"})
        assert w.status == 200 and w.header("access-control-allow-origin") == "http://localhost:3000", w

        other = "https://evil.example.net"
        pre = r.call("OPTIONS", f"/items/{item}", headers={"Origin": other,
                                                           "Access-Control-Request-Method": "GET"})
        assert pre.status == 204 and pre.header("access-control-allow-origin") is None, pre
        got = r.get(f"/items/{item}", {"Origin": other})
        assert got.status == 200 and got.header("access-control-allow-origin") is None, got
        assert "origin" in got.header("vary").lower(), "the answer depends on Origin: caches must know"
        assert r.get(f"/items/{item}").header("access-control-allow-origin") is None, "no Origin, no CORS"
    finally:
        r.stop()


def test_cors_is_off_by_default_and_star_allows_any_origin(stack, heartbeats, replica):
    item = create(replica)
    pre = replica.call("OPTIONS", f"/items/{item}", headers={"Origin": ORIGIN,
                                                             "Access-Control-Request-Method": "GET"})
    assert pre.header("access-control-allow-origin") is None, "off by default: no preflight allows"
    got = replica.get(f"/items/{item}", {"Origin": ORIGIN})
    assert got.header("access-control-allow-origin") is None and got.header("vary") is None, got
    r = cors_replica(stack, "it-cors-star", "*")
    try:
        pre = r.call("OPTIONS", "/items", headers={"Origin": "http://x.test",
                                                   "Access-Control-Request-Method": "POST"})
        assert pre.status == 204 and pre.header("access-control-allow-origin") == "*", pre
        got = r.get(f"/items/{item}", {"Origin": "http://x.test"})
        assert got.header("access-control-allow-origin") == "*", got
    finally:
        r.stop()


def test_check_config_names_a_bad_cors_origin():
    for bad in ("https://app.example.com/", "app.example.com", "ftp://x.test", "null", "https://a.test:0"):
        env = dict(os.environ, CDCACHE_HTTP_CORS_ORIGINS=f"http://ok.test, {bad}")
        out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True, timeout=10)
        assert out.returncode != 0, bad
        assert "http.cors_origins" in out.stderr and "CDCACHE_HTTP_CORS_ORIGINS" not in out.stdout, out.stderr
    env = dict(os.environ, CDCACHE_HTTP_CORS_ORIGINS="https://app.example.com, http://[::1]:8080, *")
    out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr


def test_index_and_description_are_served(replica):
    idx = replica.get("/")
    assert idx.status == 200 and idx.header("content-type") == "application/json", idx
    links = idx.json()["links"]
    assert links == {"items": "/items", "openapi_json": "/openapi.json", "openapi_yaml": "/openapi.yaml",
                     "health": "/health", "ready": "/ready", "metrics": "/metrics"}
    assert [r["name"] for r in idx.json()["resources"]] == ["items"], "the shipped config's one resource"
    for path in links.values():
        assert replica.get(path).status == 200, path
    # generated from the resources (apidoc.c): for the shipped config, items as openapi.yaml has it
    y = replica.get("/openapi.yaml")
    assert y.status == 200 and y.header("content-type") == "application/yaml", y
    j = replica.get("/openapi.json")
    assert j.status == 200 and j.header("content-type") == "application/json", j
    doc = j.json()
    assert doc["openapi"].startswith("3.1") and "/items/{id}" in doc["paths"]
    import yaml  # PyYAML: make deps installs it (the build needs it)
    assert yaml.safe_load(y.body) == doc, "the YAML is the JSON's tree"


def raw_request(url, data):
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_methods_a_resource_does_not_take_get_405_with_allow(replica):
    for method, path in (("POST", "/health"), ("DELETE", "/ready"), ("PUT", "/metrics"), ("POST", "/"),
                         ("DELETE", "/openapi.json"), ("PATCH", "/items"), ("POST", "/items/1")):
        r = replica.call(method, path)
        assert_problem(r, 405, "method-not-allowed")
        assert r.header("allow") and method not in r.header("allow").split(", "), (method, path, r)
    for path in ("/health", "/ready", "/metrics", "/", "/openapi.yaml"):
        assert replica.call("HEAD", path).status == 200, path
    # TRACE never reaches a handler (civetweb refuses it): still a 405 problem with Allow
    out = raw_request(replica.url, b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405"), out
    assert b"Allow: GET, HEAD, OPTIONS" in head and b"application/problem+json" in head, out
    assert json.loads(body)["type"] == "urn:cdcache:problem:method-not-allowed"
    # a head civetweb cannot parse (a control character in a header value) gets problem+json too
    out = raw_request(replica.url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/problem+json" in head, out
    assert json.loads(body)["type"] == "urn:cdcache:problem:bad-request"
