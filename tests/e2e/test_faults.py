"""Faults on the real stack: Debezium paused or stopped. Reads stay correct: read-your-writes through the
load balancer with X-Min-Version, and bypass once a replica cannot vouch for its cache."""
import os
import signal
import time

from harness import metric, report, request, wait_until


def create(base):
    r = request(base, "POST", "/items", {"name": "f", "description": "d", "price": "1.00"})
    assert r.status == 201, r
    return r.json()


def debezium_pid(stack):
    with open(os.path.join(stack.dir, "debezium", "debezium.pid")) as f:
        return int(f.read())


def test_read_your_writes_through_the_balancer_while_cdc_is_paused(stack, lb, replicas):
    items = [create(lb) for _ in range(5)]
    for it in items:  # cache every item on every replica at version 1
        for base in replicas:
            request(base, "GET", f"/items/{it['id']}")
    os.kill(debezium_pid(stack), signal.SIGSTOP)
    try:
        checked = 0
        for round_ in range(6):
            for it in items:
                w = request(lb, "PATCH", f"/items/{it['id']}", {"description": f"round {round_}"})
                version = int(w.header("etag").strip('"'))
                for base in replicas + [lb]:
                    r = request(base, "GET", f"/items/{it['id']}", headers={"X-Min-Version": str(version)})
                    assert r.status == 200 and r.json()["version"] >= version, (base, r)
                    assert r.json()["description"] == f"round {round_}"
                    checked += 1
        # without X-Min-Version the other replica may still serve its older copy: that is the bound
        report("e2e", f"e2e: read-your-writes with Debezium paused: {checked} reads after writes, none stale")
    finally:
        os.kill(debezium_pid(stack), signal.SIGCONT)


def test_stopped_debezium_means_bypass_within_the_bound_then_recovery(stack, replicas):
    item = create(replicas[0])
    for base in replicas:
        request(base, "GET", f"/items/{item['id']}")
        assert request(base, "GET", f"/items/{item['id']}").header("x-cache") == "hit"
    stack.stop_part("debezium")
    t0 = time.monotonic()
    try:
        for base in replicas:
            wait_until(lambda: request(base, "GET", f"/items/{item['id']}").header("x-cache") == "bypass", 20,
                       interval=0.1, what="bypass once Debezium is silent")
        took = time.monotonic() - t0
        assert took < 5 + 3, f"bypass after {took:.1f}s; max_staleness is 5 s"
        for base in replicas:
            ready = request(base, "GET", "/ready")
            # still ready (reads are answered correctly, from PostgreSQL): a probe on /ready must not
            # take every replica out of the balancer because Debezium stopped
            assert ready.status == 200 and not ready.json()["checks"]["cdc"]["serving_from_cache"]
            assert metric(base, "cdcache_cdc_vouching") == 0
        # a write while Debezium is down is visible everywhere: reads bypass to PostgreSQL; behind it,
        # a backlog of 400 single-row transactions for Debezium to stream after its restart
        filler = create(replicas[0])
        stack.psql("; ".join(f"UPDATE inventory.items SET price = {i % 90 + 1} WHERE id = {filler['id']}"
                             for i in range(400)))
        request(replicas[0], "PATCH", f"/items/{item['id']}", {"name": "during outage"})
        for base in replicas:
            assert request(base, "GET", f"/items/{item['id']}").json()["name"] == "during outage"
        time.sleep(5.5)  # past max_staleness: from here on, the pre-outage row is too stale to serve
    finally:
        stack.run_part("debezium")
    # Debezium restarted from its stored offsets with the outage's changes still to stream, all older
    # than max_staleness. A heartbeat can come before that backlog; a replica that vouched on it would
    # serve its old copy as a hit.
    end = time.monotonic() + 60
    fresh = set()
    while len(fresh) < len(replicas) and time.monotonic() < end:
        for base in replicas:
            r = request(base, "GET", f"/items/{item['id']}")
            assert r.json()["name"] == "during outage", f"{base} served the pre-outage row ({r.header('x-cache')})"
            if r.header("x-cache") == "hit":
                fresh.add(base)
    assert len(fresh) == len(replicas), "caching resumed on every replica"
    for base in replicas:
        wait_until(lambda: request(base, "GET", "/ready").status == 200, 60, what="ready again")
    report("e2e", f"e2e: Debezium stopped -> every replica bypassing after {took:.1f}s (max_staleness 5 s)")
    # the change made during the outage arrives once Debezium resumes from its offsets
    for base in replicas:
        wait_until(lambda: (lambda r: r.header("x-cache") == "hit" and r.json()["name"] == "during outage")(
            request(base, "GET", f"/items/{item['id']}")), 60, what="caching resumes with the outage's write")


def test_health_answers_directly_right_after_a_burst_through_the_balancer(stack, lb, replicas):
    """nginx keeps idle upstream connections; with more of them than a replica has threads (civetweb: a
    thread per connection), /health on the replica itself timed out for about a minute after a burst."""
    import subprocess
    item = create(lb)
    subprocess.run(["wrk", "-t2", "-c128", "-d3s", f"{lb}/items/{item['id']}"], capture_output=True,
                   timeout=60)
    for base in replicas:
        t0 = time.monotonic()
        r = request(base, "GET", "/health", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 200 and took < 2, f"{base}/health after the burst: {r.status} in {took:.1f}s"
    report("e2e", "e2e: /health straight on each replica right after a 3 s burst of 128 connections "
                  "through nginx: answered")
