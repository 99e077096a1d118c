#!/usr/bin/env python3
"""cdcache consistency checker, after Meta's Polaris and Uber's Cache Inspector.

It runs a seeded workload against a real stack (3 replicas by default): writers change rows through the
API and with plain SQL (updates, deletes, re-inserts of deleted ids), while readers hammer every replica
directly. Every write gives the row a unique name, and the checker keeps each key's history of committed
states with the time each commit was acknowledged. Each read is judged as it completes:

  a read that starts at t0 violates the bound when it returns a state older than the newest state
  acknowledged at or before t0 - bound.

Acknowledgement times are taken when the write's response arrives, a little after the commit, which makes
the check lenient by the write's own latency (milliseconds), never stricter. A write whose outcome is
unknown (a connection lost mid-request, a 5xx, PostgreSQL restarting) is settled by reading the row back
from PostgreSQL, the truth, and counts as acknowledged only then. A read's staleness is how long before t0
the state it returned had been superseded (0 when it was current). Reads that fail (connection errors,
5xx) are counted as errors and not judged; a read that answers with a row is always judged, whatever
fault is under way.

Faults (--faults KINDS, a comma list; `kills` = redis,debezium,replica; `all` = every kind), run in turn
every --fault-every seconds:

  redis         Redis stopped, 1 s later started again (its AOF keeps the streams; a new run id)
  debezium      Debezium Server stopped (SIGTERM), 1 s later started again from its stored offsets
  replica       a replica SIGKILLed and started again (empty cache)
  partition     a replica partitioned from Redis: SIGSTOP, its Redis connections killed (CLIENT KILL ID of
                every client whose TCP peer is a socket of that process, found through /proc), its
                consumer group destroyed on every stream it reads and its entry removed from the
                retention registry (what retention does to a replica silent past group_dead_after_ms);
                writes go on for --outage seconds; SIGCONT
  source-reset  Debezium stopped, writes go on for --outage seconds, the replication slot dropped once
                inactive, Debezium's offsets deleted, Debezium started again: it streams from the current
                WAL position, so the writes made meanwhile are never streamed
  pg-restart    PostgreSQL stopped (pg_ctl -m fast) and started again (stack.sh, whose migrations are
                idempotent); Debezium must resume streaming by itself (the report says when it did not
                and the checker had to restart it)
  pause         a replica SIGSTOPped for --pause seconds (default: past its cdc.max_staleness_ms), SIGCONT

Besides the writers' keys, --fault-keys keys are written only by the fault schedule: once in each fault's
outage (after the restart for pg-restart), then left alone. A write the pipeline lost stays visible on
them until the next fault instead of being papered over by the next ordinary write.

With --faults and --reads, the run goes on past --reads until every kind in the schedule has run once
and --fault-every seconds have passed since the last one. Each violation is attributed to the fault
during which the state it returned was superseded (from one bound before the fault began, for changes
still in flight when it struck, to the end of its recovery).

After the workload, the checker waits for the pipeline to settle and checks that every replica's answer
for every key equals its row in PostgreSQL byte for byte. It prints reads checked, violations and the
worst staleness, and exits non-zero on any violation, divergence or fault that could not be carried out.

  tests/consistency/checker.py --reads 20000 --seed 7                # starts its own throwaway stack
  tests/consistency/checker.py --reads 1000000 --faults kills        # kills Redis, Debezium, a replica
  tests/consistency/checker.py --reads 40000 --faults all            # every fault kind, in one schedule
  tests/consistency/checker.py --faults partition,source-reset --build /tmp/oldbuild
  tests/consistency/checker.py --stack .stack                        # uses a running stack instead
  RESOURCES=items tests/consistency/checker.py --reads 20000         # items only, on today's stack

Resources (--resources or the environment's RESOURCES, a comma list of items, customers, orders; default:
every one of them the stack declares). The keys, writes and reads are spread over the chosen resources
(issue 14): items by their name, customers by their name, orders by their status, each through the API and
with plain SQL (updates, deletes, re-inserts of deleted keys, OVERRIDING SYSTEM VALUE for orders' identity),
and the summary gives reads, violations and diverged entries per resource. A stack the checker starts
itself declares tests/schemas/shop.yaml (after tests/schemas/shop.sql) unless the resources are items
alone, which runs today's stack. With --stack and faults that restart Debezium or PostgreSQL, run it with
the CONFIG the stack was started with in the environment (CONFIG=tests/schemas/shop.yaml).
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import urllib.request
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
from harness import ROOT, SHOP_SQL, SHOP_YAML, Stack, request  # noqa: E402

ABSENT = "<absent>"
KILLS = ["redis", "debezium", "replica"]
# the order of `all`: kills and the new faults interleaved, so a short run still varies the pipeline
ALL_FAULTS = ["redis", "partition", "debezium", "source-reset", "replica", "pg-restart", "pause"]

# What a replica reads (config.example.yaml: cdc.stream, cdc.watermark_stream, cdc.heartbeat_stream,
# cdc.group_prefix; src/retention.c: the registry <group_prefix>:replicas). The stacks the checker runs
# keep the defaults.
STREAMS = ["cdcache.inventory.items", "cdcache.inventory.cdcache_watermark", "__debezium-heartbeat.cdcache"]
WATERMARK_STREAM = STREAMS[1]
DDL_STREAM = "cdcache.cdcache.ddl_signal"      # cdc.ddl_stream: the DDL signal's stream
GROUP_PREFIX = "cdcache"
SLOT = "cdcache"                                # debezium/application.properties: slot.name
OFFSETS_KEY = "metadata:debezium:offsets"       # offset.storage.redis.key


class Resource:
    """One resource the checker loads: its route, table and stream, and the text column every write sets to
    a unique token: the state a read is judged on."""

    def __init__(self, name, table, state_col, stream, uuid_key):
        self.name, self.table, self.col, self.stream, self.uuid_key = name, table, state_col, stream, uuid_key
        self.marker = f'"{state_col}":"'.encode()

    def lit(self, key):
        """The key as a SQL literal."""
        return f"'{key}'" if self.uuid_key else str(int(key))

    def path(self, key):
        return f"/{self.name}/{key}"

    def create_body(self, token, anchor):
        if self.name == "items":
            return {"name": token, "description": "checker", "price": "1.00"}
        if self.name == "customers":
            return {"email": f"{uuid.uuid4().hex}@checker.invalid", "name": token}
        return {"customer_id": anchor, "total": "1.00", "status": token}

    def reinsert_sql(self, key, token, anchor):
        if self.name == "items":
            return (f"INSERT INTO inventory.items (id, name, description, price) VALUES "
                    f"({key}, '{token}', 'reinserted', 2.00) RETURNING 'ok'")
        if self.name == "customers":
            return (f"INSERT INTO shop.customers (id, email, name) VALUES ('{key}', '{key}@checker.invalid', "
                    f"'{token}') RETURNING 'ok'")
        return (f"INSERT INTO shop.orders (id, customer_id, total, status) OVERRIDING SYSTEM VALUE VALUES "
                f"({key}, '{anchor}', 2.00, '{token}') RETURNING 'ok'")

    def update_sql(self, key, token):
        return f"UPDATE {self.table} SET {self.col} = '{token}' WHERE id = {self.lit(key)} RETURNING 'ok'"

    def state_of(self, body):
        return body.split(self.marker, 1)[1].split(b'"', 1)[0].decode()

    def key_json(self, key):
        return json.dumps({"id": key if self.uuid_key else int(key)}, separators=(",", ":"))


RESOURCES = {
    "items": Resource("items", "inventory.items", "name", "cdcache.inventory.items", False),
    "customers": Resource("customers", "shop.customers", "name", "cdcache.shop.customers", True),
    "orders": Resource("orders", "shop.orders", "status", "cdcache.shop.orders", False),
}


def parse_resources(value):
    """'' -> None (every resource the stack declares), else a comma list of items, customers, orders."""
    if not value:
        return None
    names = []
    for part in value.split(","):
        part = part.strip()
        if part not in RESOURCES:
            raise argparse.ArgumentTypeError(f"unknown resource {part!r}: a comma list of {', '.join(RESOURCES)}")
        if part not in names:
            names.append(part)
    return names


def declared_resources(base):
    """The checker's resources that the replica at base serves (GET /NAME answers 200)."""
    out = []
    for name in RESOURCES:
        try:
            if request(base, "GET", f"/{name}?limit=1", timeout=10).status == 200:
                out.append(name)
        except OSError:
            pass
    return out


def parse_faults(value):
    """'' -> [], 'kills' -> the old three kills, 'all' -> every kind, else a comma list of kinds."""
    if not value:
        return []
    kinds = []
    for part in value.split(","):
        part = part.strip()
        if part in ("kills", "1"):
            add = KILLS
        elif part == "all":
            add = ALL_FAULTS
        elif part in ALL_FAULTS:
            add = [part]
        else:
            raise argparse.ArgumentTypeError(
                f"unknown fault {part!r}: kills, all, or a comma list of {', '.join(ALL_FAULTS)}")
        kinds += [k for k in add if k not in kinds]
    return kinds


def request_ok(url):
    """True when GET url answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class History:
    """Per-key list of [ack_time or None, state]; one writer per key appends, readers scan."""

    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()

    def begin(self, state):
        with self.lock:
            self.entries.append([None, state])
            return len(self.entries) - 1

    def ack(self, i, t):
        with self.lock:
            self.entries[i][0] = t

    def abandon(self, i):
        with self.lock:
            self.entries[i][0] = -1.0  # never committed

    def judge(self, state, t0, bound):
        """Returns (violation, staleness_seconds, known, superseded_at)."""
        with self.lock:
            entries = [list(e) for e in self.entries if e[0] != -1.0]
        newest_before_bound = -1
        newest_before_t0 = -1
        for i, (t, _) in enumerate(entries):
            if t is not None and t <= t0 - bound:
                newest_before_bound = i
            if t is not None and t <= t0:
                newest_before_t0 = i
        matches = [i for i, (_, s) in enumerate(entries) if s == state]
        if not matches:
            return False, 0.0, False, None
        i = max(matches)
        violation = i < newest_before_bound
        stale = 0.0
        superseded = None
        if i < newest_before_t0:
            superseded = entries[i + 1][0]
            stale = max(0.0, t0 - superseded) if superseded is not None else 0.0
        return violation, stale, True, superseded


class Conn:
    """A keep-alive HTTP connection that reconnects on failure."""

    def __init__(self, base, timeout=30):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.timeout = timeout
        self.c = None

    def get(self, path, headers=None):
        for attempt in range(2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.c.request("GET", path, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.getheader("X-Cache"), r.read()
            except (OSError, http.client.HTTPException):
                if self.c:
                    self.c.close()
                self.c = None
                if attempt == 1:
                    raise


class PsqlLost(Exception):
    pass


class Psql:
    """One long-lived psql session; each statement's success is read back through RETURNING. psql run
    from a pipe exits when it loses its server: run() then raises PsqlLost and the session must be
    replaced (Sql does that)."""

    def __init__(self, port):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", str(port), "-U",
                                   "postgres", "-d", "cdcache"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.n = 0

    def run(self, sql):
        self.n += 1
        marker = f"__done_{self.n}"
        try:
            self.p.stdin.write(sql.rstrip(";") + ";\n\\echo " + marker + "\n")
            self.p.stdin.flush()
        except OSError as e:
            raise PsqlLost(str(e))
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise PsqlLost("psql exited")
            line = line.rstrip("\n")
            if line == marker:
                return out
            out.append(line)

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Sql:
    """A Psql session that is replaced when PostgreSQL goes away (pg-restart)."""

    def __init__(self, port, stop):
        self.port = port
        self.stop = stop
        self.p = Psql(port)

    def once(self, sql):
        """Runs sql; raises PsqlLost (the outcome is unknown) after replacing the session."""
        try:
            return self.p.run(sql)
        except PsqlLost:
            self.p.close()
            self.p = Psql(self.port)
            raise

    def retry(self, sql, deadline=180.0):
        """For reads whose answer we must have: retries until PostgreSQL answers."""
        end = time.monotonic() + deadline
        while True:
            try:
                return self.once(sql)
            except PsqlLost:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def close(self):
        self.p.close()


def parse_yaml_value(path, key):
    """The value of `key:` in a generated (flat, one key per line) replica config, or None."""
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*" + re.escape(key) + r":\s*\"?([^\"#\s]*)\"?", line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


class Checker:
    def __init__(self, args, stack_vars, stack=None):
        self.args = args
        self.rng = random.Random(args.seed)
        self.vars = stack_vars
        self.stack = stack
        self.replicas = stack_vars["REPLICA_URLS"].split(",")
        self.lb = stack_vars.get("CDCACHE_URL") or self.replicas[0]
        self.pg_port = stack_vars["PG_PORT"]
        names = args.resources or declared_resources(self.replicas[0])
        missing = [n for n in names if n not in declared_resources(self.replicas[0])]
        if not names or missing:
            raise SystemExit(f"checker: the stack does not serve {', '.join(missing) or 'any resource'}")
        self.resources = [RESOURCES[n] for n in names]
        self.anchor = None      # the customer every order belongs to (never deleted)
        self.keys = []          # (resource, key) written by the writers
        self.fault_keys = []    # (resource, key) written only by the fault schedule
        self.hist = {}
        self.per = {n: {"reads": 0, "violations": 0, "writes": 0} for n in names}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reads = self.violations = self.errors = self.unknown = 0
        self.worst = 0.0
        self.worst_detail = ""
        self.by_cache = {}
        self.writes = 0
        self.fault_writes_total = 0
        self.kinds = args.faults
        self.faults = []        # dicts: kind, target, start, end, detail, violations, worst
        self.fault_errors = []
        self.fault_active = False
        self.kinds_done = set()
        self.last_fault_end = None
        self.outside_violations = 0
        self.examples = {}      # fault number (0: outside any fault) -> a few violations
        self.t_start = time.monotonic()
        self.fault_sql = None

    # ----------------------------------------------------------------- setup
    def new_key(self, res, name):
        r = request(self.lb, "POST", f"/{res.name}", res.create_body(name, self.anchor))
        assert r.status == 201, r
        key = (res, r.json()["id"])
        h = History()
        h.ack(h.begin(name), time.monotonic())
        self.hist[key] = h
        return key

    def seed_keys(self):
        """--keys keys (and --fault-keys) spread round-robin over the resources; with items alone, the same
        keys as before resources existed."""
        if any(res.name == "orders" for res in self.resources):
            r = request(self.lb, "POST", "/customers", {"email": f"anchor-{uuid.uuid4().hex}@checker.invalid",
                                                        "name": "checker anchor"})
            assert r.status == 201, r
            self.anchor = r.json()["id"]
        n = len(self.resources)
        for i in range(self.args.keys):
            self.keys.append(self.new_key(self.resources[i % n], f"seed-{i}-{self.args.seed}"))
        if self.kinds:
            for i in range(self.args.fault_keys):
                self.fault_keys.append(self.new_key(self.resources[i % n], f"fseed-{i}-{self.args.seed}"))

    # ----------------------------------------------------------------- writers
    def settle(self, sql, rkey, token, state):
        """A write whose outcome is unknown or failed: did it commit? PostgreSQL says."""
        res, key = rkey
        truth = sql.retry(f"SELECT {res.col} FROM {res.table} WHERE id = {res.lit(key)}")
        return truth == [] if state == ABSENT else truth == [token]

    def writer(self, w):
        rng = random.Random(self.args.seed * 1000 + w)
        mine = [k for i, k in enumerate(self.keys) if i % self.args.writers == w]
        absent = set()
        sql = Sql(self.pg_port, self.stop)
        seq = 0
        try:
            while not self.stop.is_set():
                rkey = rng.choice(mine)
                res, key = rkey
                h = self.hist[rkey]
                seq += 1
                token = f"k{key}-w{w}-{seq}"
                try:
                    if rkey in absent:
                        state = token
                        i = h.begin(state)
                        ok = sql.once(res.reinsert_sql(key, token, self.anchor)) == ["ok"]
                    else:
                        op = rng.random()
                        if op < 0.45:
                            state = token
                            i = h.begin(state)
                            base = rng.choice(self.replicas + [self.lb])
                            try:
                                ok = request(base, "PATCH", res.path(key), {res.col: token},
                                             timeout=30).status == 200
                            except (OSError, http.client.HTTPException):
                                ok = None  # unknown outcome: the write may or may not have committed
                        elif op < 0.85:
                            state = token
                            i = h.begin(state)
                            ok = sql.once(res.update_sql(key, token)) == ["ok"]
                        else:
                            state = ABSENT
                            i = h.begin(state)
                            if rng.random() < 0.5:
                                ok = sql.once(f"DELETE FROM {res.table} WHERE id = {res.lit(key)} "
                                              "RETURNING 'ok'") == ["ok"]
                            else:
                                try:
                                    ok = request(rng.choice(self.replicas), "DELETE", res.path(key),
                                                 timeout=30).status == 204
                                except (OSError, http.client.HTTPException):
                                    ok = None
                except PsqlLost:
                    ok = None  # PostgreSQL went away mid-statement (pg-restart)
                if not ok:
                    # Failed (a 5xx, PostgreSQL restarting) or unknown (a replica died mid-request):
                    # keep the state possible but never use it as the reference point until the truth
                    # in PostgreSQL says it committed.
                    ok = self.settle(sql, rkey, token, state)
                if ok:
                    h.ack(i, time.monotonic())
                    if state == ABSENT:
                        absent.add(rkey)
                    else:
                        absent.discard(rkey)
                    with self.lock:
                        self.writes += 1
                        self.per[res.name]["writes"] += 1
                else:
                    h.abandon(i)
                time.sleep(self.args.write_interval * rng.random() * 2)
        finally:
            sql.close()

    def fault_writes(self):
        """Writes every fault key once (plain SQL), inside the fault's outage; returns how many committed."""
        n = 0
        for rkey in self.fault_keys:
            res, key = rkey
            h = self.hist[rkey]
            token = f"f{key}-fault{len(self.faults)}"
            i = h.begin(token)
            for attempt in range(3):  # a session PostgreSQL's restart closed fails its first statement
                try:
                    ok = self.fault_sql.once(res.update_sql(key, token)) == ["ok"]
                except PsqlLost:
                    ok = self.settle(self.fault_sql, rkey, token, token)
                if ok:
                    break
            if ok:
                h.ack(i, time.monotonic())
                n += 1
            else:
                h.abandon(i)
        with self.lock:
            self.writes += n
            self.fault_writes_total += n
        return n

    # ----------------------------------------------------------------- readers
    def reader(self, r):
        rng = random.Random(self.args.seed * 7919 + r)
        conns = {b: Conn(b) for b in self.replicas}
        all_keys = self.keys + self.fault_keys
        while not self.stop.is_set():
            rkey = rng.choice(all_keys)
            res, key = rkey
            base = rng.choice(self.replicas)
            t0 = time.monotonic()
            try:
                status, xc, body = conns[base].get(res.path(key))
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                time.sleep(0.01)
                continue
            if status == 404:
                state = ABSENT
            elif status == 200:
                state = res.state_of(body)
            else:
                with self.lock:
                    self.errors += 1
                continue
            violation, stale, known, superseded = self.hist[rkey].judge(state, t0, self.args.bound)
            with self.lock:
                self.reads += 1
                self.per[res.name]["reads"] += 1
                self.by_cache[xc] = self.by_cache.get(xc, 0) + 1
                if not known:
                    self.unknown += 1
                if violation:
                    self.violations += 1
                    self.per[res.name]["violations"] += 1
                    f = self.fault_at(superseded)
                    if f is None:
                        self.outside_violations += 1
                        where = "outside any fault"
                    else:
                        f["violations"] += 1
                        f["worst"] = max(f["worst"], stale)
                        where = f"superseded during fault {f['n']} ({f['kind']}{f['target']})"
                    shown = self.examples.setdefault(f["n"] if f else 0, [])
                    if len(shown) < 3:  # a few of each fault's, and of those outside any
                        shown.append(f"{res.name} key {key} on {base} ({xc}) at +{t0 - self.t_start:.1f}s returned "
                                     f"{state!r} {stale:.3f}s after it was superseded, {where}")
                if stale > self.worst:
                    self.worst = stale
                    self.worst_detail = f"{res.name} key {key} on {base} (X-Cache: {xc})"
                self.maybe_finish()

    def fault_at(self, t):
        """The fault whose window (from one bound before it began, for changes still in flight when it
        struck, to the end of its recovery) holds time t, else None."""
        if t is None:
            return None
        for f in reversed(self.faults):
            if f["start"] - self.args.bound <= t <= (f["end"] if f["end"] is not None else float("inf")):
                return f
        return None

    def maybe_finish(self):
        """Called with self.lock held: stop once --reads are done and the fault schedule has run."""
        if not self.args.reads or self.reads < self.args.reads:
            return
        if self.kinds:
            if self.fault_active or self.kinds_done != set(self.kinds):
                return
            if time.monotonic() - self.last_fault_end < self.args.fault_every:
                return
        self.stop.set()

    # ----------------------------------------------------------------- faults
    def replica_dir(self, n):
        return os.path.join(self.stack.dir, f"replica-{n}")

    def replica_pid(self, n):
        with open(os.path.join(self.replica_dir(n), "cdcache.pid")) as f:
            return int(f.read())

    def replica_group(self, n):
        rid = parse_yaml_value(os.path.join(self.replica_dir(n), "config.yaml"), "replica_id") or f"replica-{n}"
        return f"{GROUP_PREFIX}-{rid}"

    def max_staleness(self):
        v = parse_yaml_value(os.path.join(self.replica_dir(1), "config.yaml"), "max_staleness_ms")
        return int(v) / 1000.0 if v else 5.0

    def redis_peer_ports(self, pid):
        """Local ports of the TCP connections from process pid to Redis (its sockets, via /proc)."""
        inodes = set()
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        redis_port = int(self.stack.vars["REDIS_PORT"])
        ports = set()
        for table in ("tcp", "tcp6"):
            try:
                lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == redis_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
        return ports

    def redis_clients(self):
        out = []
        for line in self.stack.redis("CLIENT", "LIST").splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "id" in fields:
                out.append(fields)
        return out

    def debezium_alive(self):
        try:
            with open(os.path.join(self.stack.dir, "debezium", "debezium.pid")) as f:
                os.kill(int(f.read()), 0)
            return True
        except (OSError, ValueError):
            return False

    def last_watermark_ms(self):
        out = self.stack.redis("XREVRANGE", WATERMARK_STREAM, "+", "-", "COUNT", "1").splitlines()
        return int(out[0].split("-")[0]) if out and re.match(r"^\d+-\d+$", out[0]) else 0

    def fault_loop(self):
        rng = random.Random(self.args.seed + 99)
        self.fault_sql = Sql(self.pg_port, self.stop)
        try:
            while not self.stop.wait(self.args.fault_every):
                kind = self.kinds[len(self.faults) % len(self.kinds)]
                f = {"n": len(self.faults) + 1, "kind": kind, "target": "", "start": time.monotonic(),
                     "end": None, "detail": "", "violations": 0, "worst": 0.0}
                with self.lock:
                    self.fault_active = True
                    self.faults.append(f)
                print(f"checker: fault {f['n']}: {kind} at +{f['start'] - self.t_start:.1f}s", file=sys.stderr)
                try:
                    f["detail"] = getattr(self, "fault_" + kind.replace("-", "_"))(f, rng)
                except Exception as e:  # a fault that could not be carried out invalidates the run
                    f["detail"] = f"FAILED: {type(e).__name__}: {e}"
                    self.fault_errors.append(f"fault {f['n']} {kind}: {e}")
                with self.lock:
                    f["end"] = time.monotonic()
                    self.last_fault_end = f["end"]
                    self.kinds_done.add(kind)
                    self.fault_active = False
                print(f"checker: fault {f['n']}: {self.describe(f)}", file=sys.stderr)
                if self.fault_errors:
                    self.stop.set()
                    break
        finally:
            self.fault_sql.close()

    def describe(self, f):
        return (f"{f['kind']}{f['target']} at +{f['start'] - self.t_start:.1f}s for "
                f"{(f['end'] or f['start']) - f['start']:.1f}s: {f['detail']}")

    def fault_redis(self, f, rng):
        self.stack.stop_part("redis")
        n = self.fault_writes()
        time.sleep(1.0)
        self.stack.run_part("redis")
        return f"Redis stopped, {n} fault-key writes, started again"

    def fault_debezium(self, f, rng):
        self.stack.stop_part("debezium")
        n = self.fault_writes()
        time.sleep(1.0)
        self.stack.run_part("debezium")
        return f"Debezium stopped, {n} fault-key writes, started again from its offsets"

    def fault_replica(self, f, rng):
        n = rng.randrange(len(self.replicas)) + 1
        f["target"] = f" replica-{n}"
        self.restart_replica(n)
        w = self.fault_writes()
        return f"SIGKILLed, restarted by the supervisor, {w} fault-key writes"

    def fault_partition(self, f, rng):
        n = rng.randrange(len(self.replicas)) + 1
        f["target"] = f" replica-{n}"
        pid = self.replica_pid(n)
        group = self.replica_group(n)
        os.kill(pid, signal.SIGSTOP)
        try:
            ports = self.redis_peer_ports(pid)
            killed = []
            for c in self.redis_clients():
                if c.get("addr", "").rsplit(":", 1)[-1].isdigit() and int(c["addr"].rsplit(":", 1)[1]) in ports:
                    self.stack.redis("CLIENT", "KILL", "ID", c["id"])
                    killed.append(f"id {c['id']} cmd={c.get('cmd', '?')}")
            destroyed = [s for s in self.streams() if self.stack.redis("XGROUP", "DESTROY", s, group) == "1"]
            self.stack.redis("HDEL", f"{GROUP_PREFIX}:replicas", group)
            t = time.monotonic()
            w = self.fault_writes()
            time.sleep(max(0.0, self.args.outage - (time.monotonic() - t)))
        finally:
            os.kill(pid, signal.SIGCONT)
        return (f"SIGSTOP; killed its Redis connections ({', '.join(killed) or 'none open'}); destroyed group "
                f"{group} on {len(destroyed)} streams and its registry entry; {w} fault-key writes; "
                f"SIGCONT after {self.args.outage:.1f}s")

    def streams(self):
        """Every stream a replica reads: the checker's resources' (and, with shop declared, the DDL
        signal's), the watermark's and the heartbeat's."""
        out = [res.stream for res in self.resources]
        if any(res.name != "items" for res in self.resources):
            out.append(DDL_STREAM)
        return out + [s for s in STREAMS if s not in out]

    def fault_source_reset(self, f, rng):
        t = time.monotonic()
        self.stack.stop_part("debezium")
        stopped = time.monotonic() - t
        w = self.fault_writes()
        time.sleep(max(0.0, self.args.outage - (time.monotonic() - t - stopped)))
        t1 = time.monotonic()
        while True:
            active = self.stack.psql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
            if active != "t":
                break
            if time.monotonic() - t1 > 60:
                raise RuntimeError("the replication slot stayed active 60 s after Debezium stopped")
            time.sleep(0.1)
        if active == "f":
            self.stack.psql(f"SELECT pg_drop_replication_slot('{SLOT}')")
        self.stack.redis("DEL", OFFSETS_KEY)
        t2 = time.monotonic()
        self.stack.run_part("debezium")
        return (f"Debezium stopped ({stopped:.1f}s), {w} fault-key writes, {self.args.outage:.1f}s of writes; "
                f"slot {'dropped' if active == 'f' else 'was absent'}, offsets deleted; Debezium streaming "
                f"again after {time.monotonic() - t2:.1f}s")

    def fault_pg_restart(self, f, rng):
        t = time.monotonic()
        self.stack.stop_part("pg")
        time.sleep(1.0)
        self.stack.run_part("pg")
        back = time.monotonic() - t
        since = int(time.time() * 1000)
        w = self.fault_writes()
        # Debezium must resume by itself: a watermark written after the restart proves it streams again.
        t1 = time.monotonic()
        note = ""
        while self.last_watermark_ms() <= since:
            if not self.debezium_alive() or time.monotonic() - t1 > 60:
                note = (f"; Debezium {'exited' if not self.debezium_alive() else 'did not stream within 60 s'}"
                        " after the restart: the checker restarted it")
                self.stack.run_part("debezium")
                break
            time.sleep(0.2)
        else:
            note = f"; Debezium streaming again {time.monotonic() - t1:.1f}s later"
        return f"PostgreSQL stopped and started again ({back:.1f}s), {w} fault-key writes after it{note}"

    def fault_pause(self, f, rng):
        n = rng.randrange(len(self.replicas)) + 1
        f["target"] = f" replica-{n}"
        pause = self.args.pause or max(2.0, 2 * self.max_staleness())
        pid = self.replica_pid(n)
        os.kill(pid, signal.SIGSTOP)
        try:
            t = time.monotonic()
            w = self.fault_writes()
            time.sleep(max(0.0, pause - (time.monotonic() - t)))
        finally:
            os.kill(pid, signal.SIGCONT)
        return (f"SIGSTOP for {pause:.1f}s (max_staleness {self.max_staleness() * 1000:.0f} ms), "
                f"{w} fault-key writes, SIGCONT")

    def restart_replica(self, n):
        """SIGKILL; the stack's supervisor starts it again by itself (scripts/stack.sh). Waits for the new
        process's pid file and /health."""
        d = self.replica_dir(n)
        old = self.replica_pid(n)
        os.kill(old, signal.SIGKILL)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                pid = self.replica_pid(n)
                if pid != old:
                    os.kill(pid, 0)
                    url = self.replicas[n - 1]
                    if request_ok(url + "/health"):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica-{n} did not come back within 60 s ({d})")

    # ----------------------------------------------------------------- quiescence
    def converge(self, deadline=60.0):
        """Every replica's answer (cache or not) must equal PostgreSQL's row, byte for byte."""
        end = time.monotonic() + deadline
        while True:
            diverged = []
            for base in self.replicas:
                for res, key in self.keys + self.fault_keys:
                    a = request(base, "GET", res.path(key))
                    b = request(base, "GET", res.path(key), headers={"Cache-Control": "no-cache"})
                    if (a.status, a.body) != (b.status, b.body):
                        diverged.append(f"{base} {res.name} key {key}: cached {a.status} {a.body[:80]!r} != row "
                                        f"{b.status} {b.body[:80]!r}")
            if not diverged or time.monotonic() > end:
                return diverged
            time.sleep(0.5)

    def diagnose(self, diverged):
        """What a divergence needs to be explained: the key's last writes (as the writer saw them), the
        change entries for it in the items stream, and each replica's consumer counters."""
        out = []
        by_text = {(res.name, str(key)): (res, key) for res, key in self.keys + self.fault_keys}
        keys = []
        for d in diverged:
            m = re.search(r" (\w+) key (\S+):", d)
            rkey = by_text.get((m.group(1), m.group(2))) if m else None
            if rkey and rkey not in keys:
                keys.append(rkey)
        for rkey in keys[:3]:
            res, key = rkey
            with self.hist[rkey].lock:
                last = [(None if t is None else round(t - self.t_start, 3), st) for t, st in self.hist[rkey].entries[-6:]]
            out.append(f"  diagnose {res.name} key {key}: last writes (acked at +s, state): {last}")
            try:
                raw = self.stack.redis("XRANGE", res.stream, "-", "+").splitlines()
                mine = [i for i, line in enumerate(raw) if line.strip() == res.key_json(key)]
                for i in mine[-6:]:
                    val = raw[i + 1] if i + 1 < len(raw) else ""
                    op = re.search(r'"op":"(\w)"', val)
                    ver = re.search(r'"after":\{[^}]*"(?:cdcache_version|version)":(\d+)', val)
                    out.append(f"  diagnose {res.name} key {key}: stream entry {raw[i - 1] if i else '?'} op "
                               f"{op.group(1) if op else 'tombstone/none'} version {ver.group(1) if ver else '-'}")
            except Exception as e:  # noqa: BLE001 - diagnostics must not hide the verdict
                out.append(f"  diagnose {res.name} key {key}: stream unreadable: {e}")
        # a Debezium that restarted resumes from its offsets (and may skip what it thinks it sent)
        for name, pattern in (("supervisord.log", r"(exited|stopped|spawned): '?debezium"),
                              (os.path.join("debezium", "debezium.log"),
                               r"(Streaming requested from LSN|[Ss]kipping|restart|ERROR)")):
            try:
                with open(os.path.join(self.stack.dir, name), errors="replace") as f:
                    hits = [line.strip()[:200] for line in f if re.search(pattern, line)]
                out += [f"  diagnose {name}: {h}" for h in hits[-8:]] or [f"  diagnose {name}: nothing"]
            except OSError as e:
                out.append(f"  diagnose {name}: unreadable: {e}")
        for base in self.replicas:
            try:
                text = request(base, "GET", "/metrics", timeout=5).body.decode()
                keep = [line for line in text.splitlines() if re.match(
                    r"cdcache_(cdc_events_total|cdc_continuity_breaks_total|cdc_vouching|cdc_reconnects_total|"
                    r"cache_fill_rejections_total)", line) and not line.endswith(" 0")]
                out.append(f"  diagnose {base}: " + "; ".join(keep))
            except OSError as e:
                out.append(f"  diagnose {base}: metrics unreadable: {e}")
        return out

    def run(self):
        self.seed_keys()
        threads = [threading.Thread(target=self.writer, args=(w,)) for w in range(self.args.writers)]
        threads += [threading.Thread(target=self.reader, args=(r,)) for r in range(self.args.readers)]
        if self.kinds:
            threads.append(threading.Thread(target=self.fault_loop))
        t0 = self.t_start = time.monotonic()
        for t in threads:
            t.start()
        if not self.args.reads:
            self.stop.wait(self.args.seconds)
            self.stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        # wait until every replica vouches again, then compare caches with rows
        for base in self.replicas:
            end = time.monotonic() + 90
            while time.monotonic() < end:
                try:
                    if request(base, "GET", "/ready", timeout=5).status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
        diverged = self.converge()
        cached = sum(v for k, v in self.by_cache.items() if k == "hit")
        lines = [
            f"consistency checker: seed {self.args.seed}, {len(self.replicas)} replicas, {len(self.keys)} keys"
            f" over {','.join(res.name for res in self.resources)}"
            f"{f' + {len(self.fault_keys)} fault keys' if self.fault_keys else ''}, "
            f"bound {self.args.bound:.3f}s, faults {','.join(self.kinds) if self.kinds else 'off'}",
            f"  reads checked:    {self.reads} in {elapsed:.1f}s ({self.reads / max(elapsed, 1e-9):.0f}/s); "
            f"X-Cache {dict(sorted(self.by_cache.items(), key=lambda kv: str(kv[0])))}; "
            f"{cached / max(self.reads, 1):.0%} from cache; {self.unknown} returned a state never written",
            f"  writes:           {self.writes} (API and plain SQL: updates, deletes, re-inserts"
            f"{f'; {self.fault_writes_total} by the fault schedule' if self.kinds else ''})",
            f"  violations:       {self.violations}"
            f"{f' ({self.outside_violations} outside any fault window)' if self.kinds else ''}",
            f"  worst staleness:  {self.worst * 1000:.1f} ms ({self.worst_detail or 'none'})",
            f"  read errors:      {self.errors} (connection failures and 5xx during faults, not judged)",
            f"  diverged entries: {len(diverged)} after quiescence",
        ]
        if len(self.resources) > 1 or self.resources[0].name != "items":
            for res in self.resources:
                p = self.per[res.name]
                nd = sum(1 for d in diverged if f" {res.name} key " in d)
                lines.append(f"  {res.name + ':':17} {p['reads']} reads, {p['writes']} writes, "
                             f"{p['violations']} violations, {nd} diverged entries")
        for f in self.faults:
            worst = f" (worst {f['worst'] * 1000:.0f} ms)" if f["violations"] else ""
            lines.append(f"  fault {f['n']}: {self.describe(f)}; violations {f['violations']}{worst}")
        for e in self.fault_errors:
            lines.append(f"  fault error: {e}")
        for n in sorted(self.examples):
            for e in self.examples[n]:
                lines.append(f"  violation: {e}")
        for d in diverged[:10]:
            lines.append(f"  diverged: {d}")
        if diverged:
            lines += self.diagnose(diverged)
        print("\n".join(lines))
        if self.args.report:
            with open(self.args.report, "a") as f:
                f.write("\n".join(lines) + "\n")
        return 1 if self.violations or diverged or self.fault_errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=0, help="stop after this many reads (default: --seconds)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bound", type=float, default=1.0, help="staleness bound in seconds")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--fault-keys", type=int, default=8,
                    help="keys written only by the fault schedule, once per fault (with --faults)")
    ap.add_argument("--readers", type=int, default=6)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--write-interval", type=float, default=0.01, help="mean pause between writes (s)")
    ap.add_argument("--faults", nargs="?", const="kills", default="", type=parse_faults, metavar="KINDS",
                    help="fault schedule: kills (the default without a value: redis,debezium,replica), all, or "
                         f"a comma list of {','.join(ALL_FAULTS)}")
    ap.add_argument("--fault-every", type=float, default=8.0, help="seconds between faults")
    ap.add_argument("--outage", type=float, default=3.0,
                    help="seconds of writes during a partition and during a source reset")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds a paused replica stays stopped (default: 2 x max_staleness_ms, at least 2)")
    ap.add_argument("--build", default=os.path.join(ROOT, os.environ.get("CDCACHE_BUILD", "build")),
                    help="folder holding the cdcache binary (default: $CDCACHE_BUILD or build)")
    ap.add_argument("--stack", help="use the running stack in this folder instead of starting one")
    ap.add_argument("--resources", type=parse_resources, default=parse_resources(os.environ.get("RESOURCES", "")),
                    metavar="NAMES", help="comma list of items,customers,orders to spread the load over "
                    "(default: $RESOURCES, else every one the stack declares)")
    ap.add_argument("--report", help="append the summary to this file")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if not os.access(os.path.join(args.build, "cdcache"), os.X_OK):
        ap.error(f"{args.build}/cdcache is missing: run make build, or give --build")

    stack = None
    if args.stack:
        vars_ = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(args.stack, "stack.env"))
                     if "=" in l and not l.startswith("#"))
        if args.faults:
            stack = Stack(parts="", replicas=len(vars_["REPLICA_URLS"].split(",")),
                          env={"BUILD_DIR": args.build})
            stack.dir = os.path.abspath(args.stack)
            stack.load_env()
    else:
        # items alone: today's stack; otherwise the shop tables too (tests/schemas/shop.yaml declares
        # items, customers and orders)
        shop = {} if args.resources == ["items"] else dict(config=SHOP_YAML, sql_files=[SHOP_SQL])
        stack = Stack(parts="pg redis debezium replicas nginx", replicas=args.replicas,
                      env={"BUILD_DIR": args.build,
                           "MAX_STALENESS_MS": str(int(args.bound * 1000 * 0.5)),
                           "CDCACHE_HEARTBEAT_MS": str(max(50, int(args.bound * 1000 * 0.1)))}, **shop).up()
        vars_ = stack.vars
    try:
        return Checker(args, vars_, stack).run()
    finally:
        if stack and not args.stack:
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
