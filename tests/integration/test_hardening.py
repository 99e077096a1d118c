"""Hostile clients and operators (issue 9), against a real PostgreSQL and Redis: tokens, headers
beyond what civetweb keeps, short bodies, oversized pages, readiness, drain, the admin listener, and
configuration that names the key without echoing a secret."""
import os
import signal
import socket
import subprocess
import time

from harness import CDCACHE, ROOT, Replica, report, request, wait_until
from test_consistency import sql_insert

TOKEN = "w-7f3c9d2e41b8a6"
READ_TOKEN = "r-0b1d2c3e4f5a69"


def raw(replica, data, timeout=10.0):
    """Sends raw bytes on one connection; returns what came back until EOF or timeout."""
    s = socket.create_connection(("127.0.0.1", replica.port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and (b"Content-Length: 0" in out or out.rstrip().endswith(b"}")):
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def test_writes_need_a_token_when_tokens_are_set(stack, heartbeats):
    r = Replica(stack, "it-auth", env={"CDCACHE_AUTH_WRITE_TOKENS": f"other-token, {TOKEN}"}).start()
    try:
        body = {"name": "a", "description": "d", "price": "1.00"}
        none = r.call("POST", "/items", body)
        assert none.status == 401 and none.header("www-authenticate").startswith("Bearer")
        assert none.header("content-type") == "application/problem+json"
        assert none.json()["type"] == "urn:cdcache:problem:unauthorized"
        bad = r.call("POST", "/items", body, {"Authorization": "Bearer nope"})
        assert bad.status == 401 and 'error="invalid_token"' in bad.header("www-authenticate")
        prefix = r.call("POST", "/items", body, {"Authorization": f"Bearer {TOKEN[:-1]}"})
        assert prefix.status == 401, "a prefix of a token is not the token"
        ok = r.call("POST", "/items", body, {"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 201, ok
        item = ok.json()["id"]
        for method, path, b in (("PUT", f"/items/{item}", body), ("PATCH", f"/items/{item}", {"name": "x"}),
                                ("PUT", "/items", dict(body, id=item)), ("DELETE", f"/items/{item}", None)):
            assert r.call(method, path, b).status == 401, (method, path)
        assert r.get(f"/items/{item}").json()["name"] == "a", "no unauthenticated write went through"
        assert r.get(f"/items/{item}").status == 200, "reads stay open without read tokens"
        for path in ("/health", "/ready", "/metrics"):
            assert r.get(path).status == 200, path
        opts = r.call("OPTIONS", f"/items/{item}")
        assert opts.status == 204 and "DELETE" in opts.header("allow"), "OPTIONS answers Allow, never a demand for a token"
        assert r.call("TRACE", f"/items/{item}").status == 405, "a method no route takes: 405, not a demand for a token"
        for path in ("/ready", "/metrics"):
            assert TOKEN not in r.get(path).body.decode()
        assert TOKEN not in r.read_log()
    finally:
        r.stop()


def test_reads_need_a_token_when_read_tokens_are_set(stack, heartbeats):
    r = Replica(stack, "it-rauth", env={"CDCACHE_AUTH_WRITE_TOKENS": TOKEN,
                                        "CDCACHE_AUTH_READ_TOKENS": READ_TOKEN}).start()
    try:
        item = sql_insert(stack, "guarded")
        assert r.get(f"/items/{item}").status == 401
        assert r.get("/items").status == 401
        assert r.get(f"/items/{item}", {"Authorization": f"Bearer {READ_TOKEN}"}).status == 200
        assert r.get(f"/items/{item}", {"Authorization": f"Bearer {TOKEN}"}).status == 200, "writers read"
        w = r.call("PATCH", f"/items/{item}", {"name": "x"}, {"Authorization": f"Bearer {READ_TOKEN}"})
        assert w.status == 401, "a read token does not write"
    finally:
        r.stop()


def test_check_config_names_the_key_and_never_echoes_a_secret():
    env = dict(os.environ, CDCACHE_POSTGRES_CONNINFO="postgresql://u:s3cr3t-pw@db:notaport/x")
    out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "postgres.conninfo" in out.stderr and "s3cr3t" not in out.stderr
    env = dict(os.environ, CDCACHE_POSTGRES_CONNINFO="host=db s3cr3t-pw=1")
    out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "postgres.conninfo" in out.stderr
    env = dict(os.environ, CDCACHE_AUTH_WRITE_TOKENS="good, bad token")
    out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "auth.write_tokens" in out.stderr and "bad token" not in out.stderr
    env = dict(os.environ, CDCACHE_AUTH_WRITE_TOKENS="s3cr3t-token")
    out = subprocess.run([CDCACHE, "check-config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "s3cr3t" not in out.stdout + out.stderr


def test_a_request_with_more_headers_than_are_kept_is_refused(replica, stack):
    item = sql_insert(stack, "headers")
    filler = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(62))
    body = b'{"name":"overwritten"}'
    req = (f"PATCH /items/{item} HTTP/1.1\r\nHost: x\r\n{filler}If-Match: \"999\"\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    out = raw(replica, req)
    assert out.startswith(b"HTTP/1.1 431"), out[:200]
    assert replica.get(f"/items/{item}", {"Cache-Control": "no-cache"}).json()["name"] == "headers", \
        "the conditional write did not run unconditionally"


def test_a_body_shorter_than_its_content_length_is_refused_in_seconds(stack, heartbeats):
    r = Replica(stack, "it-short", env={"CDCACHE_HTTP_REQUEST_TIMEOUT_MS": "1000"}).start()
    try:
        item = sql_insert(stack, "short")
        body = b'{"name":"half'
        req = (f"PATCH /items/{item} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: 100\r\n\r\n").encode() + body
        t0 = time.monotonic()
        out = raw(r, req, timeout=15)
        took = time.monotonic() - t0
        assert out.startswith(b"HTTP/1.1 408"), out[:200]
        assert took < 5, f"answered after {took:.1f}s"
        assert r.get(f"/items/{item}", {"Cache-Control": "no-cache"}).json()["name"] == "short"
    finally:
        r.stop()


def test_a_database_outage_answers_503_with_retry_after(stack, heartbeats):
    r = Replica(stack, "it-nodb", env={"CDCACHE_POSTGRES_CONNINFO": "postgresql://postgres@127.0.0.1:1/x",
                                       "CDCACHE_POSTGRES_CONNECT_TIMEOUT_MS": "500"})
    r.start(wait_ready=False)
    try:
        got = r.get("/items/1", {"Cache-Control": "no-cache"})
        assert got.status == 503 and got.header("retry-after") == "1", got
        ready = r.get("/ready")
        assert ready.status == 503 and ready.header("retry-after") is None or ready.status == 503
    finally:
        r.stop()


def test_pages_are_bounded_in_bytes(stack, heartbeats):
    r = Replica(stack, "it-bigpage", env={"CDCACHE_HTTP_MAX_LIST_BYTES": "256KiB"}).start()
    try:
        first = int(stack.psql("SELECT coalesce(max(id), 0) FROM inventory.items"))
        stack.psql("INSERT INTO inventory.items (name, description, price) "
                   "SELECT 'big', repeat('x', 60000), 1 FROM generate_series(1, 30)")
        page = r.get(f"/items?after={first}&limit=1000")
        data = page.json()
        assert page.status == 200 and 1 <= len(data["items"]) < 30
        assert len(page.body) < 256 * 1024 + 61000, len(page.body)
        assert data["next"], "a page cut by bytes says where to go on"
        seen = [i["id"] for i in data["items"]]
        while data["next"]:
            data = r.get(data["next"]).json()
            seen += [i["id"] for i in data["items"]]
        assert len(seen) >= 30 and seen == sorted(set(seen)), "every row once, in order"
    finally:
        stack.psql("DELETE FROM inventory.items WHERE name = 'big'")
        r.stop()


def test_bypassing_is_ready_and_draining_is_not(stack, heartbeats):
    r = Replica(stack, "it-drain", env={"CDCACHE_HTTP_SHUTDOWN_DELAY_MS": "5000"}).start()
    try:
        heartbeats.paused.set()  # the pipeline falls silent: reads bypass, still correct
        try:
            wait_until(lambda: not r.get("/ready").json()["checks"]["cdc"]["serving_from_cache"], 10,
                       what="bypass")
            assert r.get("/ready").status == 200
        finally:
            heartbeats.paused.clear()
        item = sql_insert(stack, "drain")
        wait_until(lambda: r.get(f"/items/{item}").header("X-Cache") == "hit", 15, what="a cache hit")
        r.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: r.get("/ready").status == 503, 3, what="not ready once draining")
        assert r.get("/ready").json()["draining"] is True
        assert r.get("/health").status == 200, "still answering while it drains"
        # a draining replica lets no connection go idle (a balancer reusing one as it stops could lose a
        # POST): every answer closes its connection, cache hits included
        for path in ("/health", f"/items/{item}", "/items/0", "/items?limit=1"):
            got = raw(r, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 ") and b"\r\nConnection: close\r\n" in got, (path, got[:300])
            if path == f"/items/{item}":
                assert b"\r\nX-Cache: hit\r\n" in got, got[:300]
        assert r.proc.wait(15) == 0, "exits 0 after the drain"
    finally:
        r.stop()


def test_health_stays_reachable_on_the_admin_listener_under_idle_connections(stack, heartbeats):
    admin_port = None
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    admin_port = s.getsockname()[1]
    s.close()
    r = Replica(stack, "it-idle", env={"CDCACHE_HTTP_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
                                       "CDCACHE_HTTP_THREADS": "4"}).start()
    idle = []
    try:
        for _ in range(200):  # far more idle sockets than worker threads
            idle.append(socket.create_connection(("127.0.0.1", r.port)))
        time.sleep(0.5)
        admin = f"http://127.0.0.1:{admin_port}"
        for path in ("/health", "/ready", "/metrics"):
            t0 = time.monotonic()
            got = request(admin, "GET", path, timeout=5)
            assert got.status == 200 and time.monotonic() - t0 < 2, (path, got)
        assert request(admin, "GET", "/items/1", timeout=5).status == 404, "the admin port serves ops only"
    finally:
        for c in idle:
            c.close()
        r.stop()


def test_the_slots_retained_wal_is_exported(stack, heartbeats):
    stack.psql("SELECT pg_create_logical_replication_slot('it_slot', 'pgoutput')")
    r = Replica(stack, "it-slot", env={"CDCACHE_CDC_SLOT_NAME": "it_slot", "CDCACHE_CDC_TICK_MS": "200"}).start()
    try:
        status = 'cdcache_slot_wal_status{status="reserved"}'
        wait_until(lambda: r.metric(status) == 1, 10, what="the slot's status")
        before = r.metric("cdcache_slot_retained_wal_bytes")
        stack.psql("INSERT INTO inventory.items (name, description, price) "
                   "SELECT 'wal', repeat(md5(g::text), 60), 1 FROM generate_series(1, 1000) g")
        wait_until(lambda: r.metric("cdcache_slot_retained_wal_bytes") > before + 1_000_000, 10,
                   what=f"retained WAL to grow while nothing consumes the slot (was {before})")
        slot = r.get("/ready").json()["checks"]["cdc"]["slot"]
        assert slot["wal_status"] == "reserved" and slot["retained_wal_bytes"] > 1_000_000
        stack.psql("SELECT pg_drop_replication_slot('it_slot')")
        wait_until(lambda: r.metric('cdcache_slot_wal_status{status="missing"}') == 1, 10,
                   what="a dropped slot to show as missing")
        text = request(r.url, "GET", "/metrics").body.decode()
        assert "cdcache_slot_retained_wal_bytes" not in text, "unknown values are absent, not -1"
    finally:
        stack.psql("DELETE FROM inventory.items WHERE name = 'wal'")
        stack.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                   "WHERE slot_name = 'it_slot'")
        r.stop()


def acl_rules(user):
    """The rules of one user in scripts/redis-users.acl.in (what the native stack loads)."""
    with open(os.path.join(ROOT, "scripts", "redis-users.acl.in")) as f:
        for line in f:
            words = line.split()
            if words[:2] == ["user", user]:
                return [w for w in words[2:] if not w.startswith(">")]
    raise KeyError(user)


def test_replicas_authenticate_as_an_acl_user_that_cannot_forge_changes(stack, heartbeats):
    """A replica's Redis user reads, acknowledges, manages groups and trims, but cannot append a
    (forged) change entry, delete a stream or flush Redis."""
    secret = "rp-5d41402abc4b2a76"
    stack.redis("ACL", "SETUSER", "cdcache-replica", "reset", f">{secret}", *acl_rules("cdcache-replica"))
    try:
        wrong = Replica(stack, "it-acl-wrong", env={"CDCACHE_REDIS_URL":
                                                    f"redis://cdcache-replica:nope@127.0.0.1:{stack.redis_port}"})
        wrong.start(wait_ready=False)
        try:
            cdc = wait_until(lambda: (lambda c: c if "AUTH" in c["last_error"] else None)(
                wrong.get("/ready").json()["checks"]["cdc"]), 10, what="the AUTH failure to show")
            assert cdc["attached"] is False and "nope" not in json_text(wrong)
        finally:
            wrong.stop()
        r = Replica(stack, "it-acl", env={"CDCACHE_REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}",
                                          "CDCACHE_REDIS_USERNAME": "cdcache-replica",
                                          "CDCACHE_REDIS_PASSWORD": secret,
                                          "CDCACHE_CDC_TRIM_INTERVAL_MS": "200"}).start()
        try:
            item = sql_insert(stack, "acl")
            r.get(f"/items/{item}")
            assert r.get(f"/items/{item}").header("x-cache") == "hit", "it reads the streams and vouches"
            wait_until(lambda: r.metric("cdcache_stream_trims_total") >= 1 or
                       stack.redis("GET", "cdcache:trim-lock") not in ("", "cdcache-it-acl"), 10,
                       what="a retention pass")
            assert secret not in r.read_log() and secret not in json_text(r)
        finally:
            r.stop()
        as_replica = ["redis-cli", "-p", stack.redis_port, "--user", "cdcache-replica", "--pass", secret,
                      "--no-auth-warning"]
        for cmd in (["XADD", "cdcache.inventory.items", "*", '{"id":1}', '{"op":"u"}'],
                    ["DEL", "cdcache.inventory.items"], ["FLUSHALL"],
                    ["SET", "cdcache.inventory.items", "x"], ["HSET", "metadata:debezium:offsets", "a", "b"]):
            out = subprocess.run(as_replica + cmd, capture_output=True, text=True)
            assert "NOPERM" in out.stdout + out.stderr, (cmd, out.stdout, out.stderr)
    finally:
        stack.redis("ACL", "DELUSER", "cdcache-replica")


def json_text(r):
    return request(r.url, "GET", "/ready").body.decode() + request(r.url, "GET", "/metrics").body.decode()


def rss_mb(pid, field="VmRSS"):
    """VmRSS, or VmHWM: the peak resident set since the process started."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def test_memory_stays_flat_under_concurrent_large_pages(stack, heartbeats):
    """400 rows of 60 kB and 16 clients asking for 1000 rows at once took a replica from 37 MB to
    532 MB when pages were bounded only in rows."""
    import concurrent.futures
    r = Replica(stack, "it-rss", env={"CDCACHE_HTTP_THREADS": "16"}).start()
    try:
        first = int(stack.psql("SELECT coalesce(max(id), 0) FROM inventory.items"))
        stack.psql("INSERT INTO inventory.items (name, description, price) "
                   "SELECT 'rss', repeat(md5(g::text), 1875), 1 FROM generate_series(1, 400) g")
        before = rss_mb(r.proc.pid, "VmHWM")
        pages = []
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for _ in range(3):
                pages += pool.map(lambda _: r.get(f"/items?after={first}&limit=1000"), range(16))
        grew = rss_mb(r.proc.pid, "VmHWM") - before
        report("hardening", f"hardening: 48 pages of up to 1000 x 60 kB rows, 16 at a time: peak RSS +{grew:.0f} MB")
        assert grew < 150, f"peak RSS grew by {grew:.0f} MB"
        assert all(p.status == 200 and p.json()["next"] for p in pages), "pages cut by bytes go on"
    finally:
        stack.psql("DELETE FROM inventory.items WHERE name = 'rss'")
        r.stop()
