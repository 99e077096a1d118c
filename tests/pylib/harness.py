"""Test harness: throwaway stacks started with scripts/stack.sh, cdcache processes, and small clients for
HTTP (http.client), PostgreSQL (psql) and Redis (redis-cli). Standard library only."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("CDCACHE_BUILD", "build"))
CDCACHE = os.path.join(BUILD, "cdcache")
REPORTS = os.path.join(BUILD, "test-reports")
SCHEMAS = os.path.join(ROOT, "tests", "schemas")
# The second real schema (issue 14): the tables, and the `resources:` config that declares them with items
SHOP_SQL = os.path.join(SCHEMAS, "shop.sql")
SHOP_YAML = os.path.join(SCHEMAS, "shop.yaml")


def report(name, text):
    """Appends a line to build/test-reports/<name>.txt (printed at the end of make test)."""
    os.makedirs(REPORTS, exist_ok=True)
    with open(os.path.join(REPORTS, name + ".txt"), "a") as f:
        f.write(text.rstrip() + "\n")


# The Redis administrator's password of each stack this process started or loaded, by Redis port: Resp and
# Replica use it when a test gives none (the native stack's Redis requires AUTH: scripts/redis-users.acl.in).
REDIS_PASSWORDS = {}


def read_env_file(path):
    """NAME=VALUE lines of a file such as DIR/stack.env or DIR/secrets.env ({} if it is missing)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    except FileNotFoundError:
        pass
    return out


def resources_yaml(path=SHOP_YAML):
    """The YAML text of a `resources:` config such as tests/schemas/shop.yaml (comments dropped), ready to
    append to a replica's config."""
    with open(path) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#")).rstrip() + "\n"


def render_resources(resources):
    """A `resources:` block from a list of dicts (values: str, list of str), e.g.
    [{"name": "customers", "table": "shop.customers", "methods": ["GET"]}]."""
    out = ["resources:"]
    for res in resources:
        first = True
        for k, v in res.items():
            if isinstance(v, (list, tuple)):
                v = "[" + ", ".join(json.dumps(str(x)) for x in v) + "]"
            else:
                v = json.dumps(str(v))
            out.append(f"  {'- ' if first else '  '}{k}: {v}")
            first = False
    return "\n".join(out) + "\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=30.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; returns it. Fails after a generous deadline."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def request(base, method, path, body=None, headers=None, timeout=30, context=None):
    """One request on a new connection. An https:// base uses context (an ssl.SSLContext)."""
    u = urllib.parse.urlsplit(base)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def metric(base, name, context=None):
    text = request(base, "GET", "/metrics", context=context).body.decode()
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class Stack:
    """A throwaway native stack (scripts/stack.sh) in a temporary folder with free-picked ports.

    config: a YAML file laid over every replica's config (`CONFIG=FILE make restart`), e.g. SHOP_YAML;
    the stack derives Debezium's tables from its `resources:` and prepares them. sql_files: run with psql
    in the stack's database once PostgreSQL is up and before the rest starts, as a user creates their
    tables before `CONFIG=... make restart` (e.g. [SHOP_SQL])."""

    def __init__(self, parts, replicas=2, lb_port=0, env=None, config=None, sql_files=()):
        self.dir = tempfile.mkdtemp(prefix="cdcache-test-")
        os.chmod(self.dir, 0o755)
        self.parts = parts
        self.replicas = replicas
        self.env = dict(os.environ, PARTS=parts, REPLICAS=str(replicas), LB_PORT=str(lb_port),
                        BUILD_DIR=BUILD, PG_PORT_BASE="0", REDIS_PORT_BASE="0", REPLICA_PORT_BASE="0",
                        DBZ_HTTP_PORT_BASE="0", PG_FSYNC="off")
        self.env.update(env or {})
        if config:
            self.env["CONFIG"] = os.path.abspath(config)
        self.sql_files = [os.path.abspath(f) for f in sql_files]
        self.vars = {}

    @property
    def config(self):
        """The CONFIG file this stack's replicas are started with, or None."""
        return self.env.get("CONFIG")

    def up(self):
        t0 = time.monotonic()
        if self.sql_files and " pg " in f" {self.parts} ":
            # PostgreSQL alone first (without CONFIG: the declared tables do not exist yet), then the
            # user's tables, then everything with CONFIG
            env = {k: v for k, v in self.env.items() if k != "CONFIG"}
            r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", self.dir],
                               env=dict(env, PARTS="pg"), capture_output=True, text=True)
            if r.returncode != 0:
                self.down()
                raise RuntimeError(f"stack up (PostgreSQL, before {self.sql_files}) failed:\n{r.stderr}")
            self.load_env()
            for f in self.sql_files:
                self.psql_file(f)
        r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", self.dir], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            logs = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "logs", self.dir],
                                  capture_output=True, text=True).stdout
            self.down()
            raise RuntimeError(f"stack up failed:\n{r.stderr}\n{logs[-6000:]}")
        self.up_seconds = time.monotonic() - t0
        self.stderr = r.stderr
        self.load_env()
        return self

    def load_env(self):
        with open(os.path.join(self.dir, "stack.env")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    self.vars[k] = v
        if self.vars.get("REDIS_PORT") and self.redis_password:
            REDIS_PASSWORDS[str(self.vars["REDIS_PORT"])] = self.redis_password

    def declare(self, config, sql_files=()):
        """Lays config over the running stack's replicas (as `CONFIG=config make restart` does), after
        running sql_files in its database: the whole stack is brought up again with CONFIG."""
        for f in sql_files:
            self.psql_file(f)
        self.env["CONFIG"] = os.path.abspath(config)
        self.sql_files = [os.path.abspath(f) for f in sql_files]
        r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", self.dir],
                           env=dict(self.env, PARTS="pg redis debezium replicas nginx"),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        self.load_env()

    def undeclare(self):
        """Forgets CONFIG: the next `stack.sh up` run with self.env starts today's stack (items only). For a
        test that recreates the database (FRESH=1), where the declared tables no longer exist."""
        self.env.pop("CONFIG", None)
        self.sql_files = []

    def run_part(self, parts):
        """Runs `stack.sh up` for some parts only (e.g. restarting Debezium)."""
        env = dict(self.env, PARTS=parts)
        r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", self.dir], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        self.load_env()

    def stop_part(self, parts):
        """Stops some parts only (fault tests); run_part() starts them again."""
        r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "stop", self.dir],
                           env=dict(self.env, PARTS=parts), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def down(self, keep=False):
        subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "down", self.dir],
                       capture_output=True, text=True)
        if not keep and not os.environ.get("KEEP_STACK"):
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pg_port(self):
        return self.vars["PG_PORT"]

    @property
    def redis_port(self):
        return self.vars["REDIS_PORT"]

    @property
    def secrets(self):
        """DIR/secrets.env: REDIS_ADMIN_PASSWORD, REDIS_DEBEZIUM_PASSWORD, REDIS_REPLICA_PASSWORD, and
        CDCACHE_TOKEN once the folder was started with AUTH=1."""
        return read_env_file(os.path.join(self.dir, "secrets.env"))

    @property
    def redis_password(self):
        """The password of Redis's user default (the administrator), or None for a Redis without one."""
        return self.secrets.get("REDIS_ADMIN_PASSWORD") or None

    def supervisorctl(self, *args):
        """supervisorctl on the stack's supervisord (scripts/stack.sh runs every part under it)."""
        return subprocess.run(["supervisorctl", "-c", os.path.join(self.dir, "supervisord.conf"),
                               *map(str, args)], capture_output=True, text=True).stdout

    def program_pid(self, name):
        """The pid supervisord has for a program (pg, pg-standby, redis, debezium, replica-N, nginx); 0
        when it is not running."""
        out = self.supervisorctl("pid", name).strip()
        return int(out) if out.isdigit() else 0

    def psql(self, sql):
        r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            self.pg_port, "-U", "postgres", "-d", "cdcache", "-c", sql],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def psql_file(self, path):
        """Runs a SQL file (psql -f) in the stack's database, stopping at the first error."""
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            self.pg_port, "-U", "postgres", "-d", "cdcache", "-f", path],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{path}: {r.stderr}"

    def psql_json(self, sql):
        """The one JSON value a query returns (e.g. SELECT to_jsonb(c) FROM ...), or None for no row."""
        out = self.psql(sql)
        return json.loads(out) if out else None

    def redis(self, *args):
        """redis-cli as the administrator (user default; REDISCLI_AUTH keeps the password off the command line)."""
        env = dict(os.environ)
        if self.redis_password:
            env["REDISCLI_AUTH"] = self.redis_password
        r = subprocess.run(["redis-cli", "--no-auth-warning", "-p", self.redis_port, *map(str, args)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def logs(self):
        return subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "logs", self.dir],
                              capture_output=True, text=True).stdout


class Resp:
    """A minimal Redis client (RESP over one socket) for tests that write thousands of entries."""

    def __init__(self, port, password=None, user="default"):
        self.sock = socket.create_connection(("127.0.0.1", int(port)))
        self.rfile = self.sock.makefile("rb")
        password = password or REDIS_PASSWORDS.get(str(port))
        if password:
            reply = self.call("AUTH", user, password)
            if reply != "OK":
                raise RuntimeError(f"AUTH as {user} failed: {reply}")

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self):
        line = self.rfile.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(line)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def close(self):
        self.sock.close()


class Replica:
    """A cdcache process started by a test, with its own YAML config."""

    def __init__(self, stack, replica_id="it-1", extra_yaml="", env=None, ssl_context=None, resources=None,
                 threads=8):
        """ssl_context: the replica serves TLS (the test sets CDCACHE_HTTP_TLS_* in env); requests
        go over https:// with this client context. resources: a `resources:` list for the config, as YAML
        text (e.g. resources_yaml(SHOP_YAML)) or a list of dicts (render_resources). threads: http.threads
        (None: the shipped default)."""
        self.port = free_port()
        self.ssl_context = ssl_context
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        # as the stack's Redis administrator (user default), as before Redis had ACL users; a test that
        # wants another user sets CDCACHE_REDIS_URL / CDCACHE_REDIS_USERNAME / CDCACHE_REDIS_PASSWORD
        password = stack.redis_password
        redis_auth = f"default:{urllib.parse.quote(password, safe='')}@" if password else ""
        self.dir = tempfile.mkdtemp(prefix="cdcache-replica-")
        self.config = os.path.join(self.dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write(f"""http:
  listen: "127.0.0.1:{self.port}"
{"" if threads is None else f"  threads: {threads}"}
  max_body_bytes: 4KiB
postgres:
  conninfo: "postgresql://postgres@127.0.0.1:{stack.pg_port}/cdcache"
redis:
  url: "redis://{redis_auth}127.0.0.1:{stack.redis_port}"
cdc:
  replica_id: "{replica_id}"
  max_staleness_ms: 3000
  reconnect_max_ms: 500
  max_entry_bytes: 64KiB
log:
  level: debug
""" + extra_yaml)
            if resources is not None:
                f.write(resources if isinstance(resources, str) else render_resources(resources))
        self.env = dict(os.environ, **(env or {}))
        self.log_path = os.path.join(self.dir, "cdcache.log")
        self.proc = None

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CDCACHE, "serve", "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        wait_until(lambda: self._get_ok("/health"), 20, what="replica health")
        if wait_ready:
            # ready (can answer correctly) and serving from its cache (the pipeline vouches for it)
            wait_until(self._serving, 30, what="replica ready and serving from its cache")
        return self

    def _serving(self):
        try:
            r = request(self.url, "GET", "/ready", timeout=2, context=self.ssl_context)
            cdc = r.json()["checks"]["cdc"]
            return r.status == 200 and (cdc.get("enabled") is False or cdc.get("serving_from_cache"))
        except (OSError, ValueError, KeyError):
            return False

    def _get_ok(self, path):
        try:
            return request(self.url, "GET", path, timeout=2, context=self.ssl_context).status == 200
        except OSError:
            return False

    def cli(self, *args, env=None, timeout=60):
        """Runs `cdcache ARGS --config <this replica's config>` (check-config, prepare, debezium-config,
        serve...) with the replica's environment; returns the CompletedProcess (text)."""
        return subprocess.run([CDCACHE, *map(str, args), "--config", self.config], capture_output=True,
                              text=True, env=dict(self.env, **(env or {})), timeout=timeout)

    def prepare(self):
        """`cdcache prepare --apply` for the declared resources (bookkeeping column and trigger, the DDL
        signal, the publication); idempotent. Fails the test if it fails."""
        r = self.cli("prepare", "--apply")
        assert r.returncode == 0, f"cdcache prepare --apply failed:\n{r.stdout}\n{r.stderr}"
        return r

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
            self.proc = None

    def get(self, path, headers=None):
        return request(self.url, "GET", path, headers=headers, context=self.ssl_context)

    def call(self, method, path, body=None, headers=None):
        return request(self.url, method, path, body, headers, context=self.ssl_context)

    def metric(self, name):
        """The value of one sample, e.g. 'cdcache_cache_hits_total' or
        'cdcache_cdc_events_total{result="poison"}'."""
        return metric(self.url, name, context=self.ssl_context)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class HeartbeatFeeder:
    """Stands in for Debezium's heartbeat watermark in integration tests (which run without Debezium):
    changes of the inventory.cdcache_watermark row, in Debezium Server's format, so the replica can
    vouch for its cache. The end-to-end tests use the real Debezium Server."""

    def __init__(self, stack, stream="cdcache.inventory.cdcache_watermark", interval=0.3):
        self.stack = stack
        self.stream = stream
        self.interval = interval
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.seq = 0
        self.origin = 1

    def run(self):
        while not self.stop_ev.is_set():
            if not self.paused.is_set():
                try:
                    now = int(time.time() * 1000)
                    # a link of the watermark chain (migrations/000003): seq +1 per write, one origin
                    self.seq += 1
                    after = {"id": 1, "ts": "2026-01-01T00:00:00Z", "seq": self.seq, "origin": self.origin}
                    value = {"before": None, "after": after, "op": "u",
                             "source": {"ts_ms": now, "schema": "inventory", "table": "cdcache_watermark"},
                             "ts_ms": now}
                    self.stack.redis("XADD", self.stream, "*", '{"id":1}', json.dumps(value))
                except AssertionError:
                    pass
            self.stop_ev.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
