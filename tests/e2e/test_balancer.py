"""The stack's public port, whichever balancer serves it (issue 15).

LB=kernel (the default): the replicas share the port (SO_REUSEPORT), so every method gets the replica's
own answer. LB=nginx (an L7 front): nginx answers TRACE itself with an HTML 405 and no Allow unless it
passes it on, and a replica restarted behind it must be back in rotation within 1 s of its /ready
(max_fails=3 fail_timeout=5s kept it out for about 6 s)."""
import threading
import time

import pytest

from harness import Stack, metric, report, request, wait_until


def assert_trace_is_a_problem(base):
    for path in ("/items", "/items/1", "/"):
        r = request(base, "TRACE", path, timeout=10)
        assert r.status == 405, f"TRACE {path}: {r.status}"
        assert r.header("content-type") == "application/problem+json", f"TRACE {path}: {r.header('content-type')}"
        assert r.header("allow"), f"TRACE {path}: no Allow"
        assert "TRACE" not in r.header("allow")
        assert r.json()["status"] == 405


def test_trace_on_the_public_port_is_the_replicas_problem(lb):
    assert_trace_is_a_problem(lb)


@pytest.fixture(scope="module")
def nginx_stack():
    s = Stack(parts="pg redis replicas nginx", replicas=2, env={"LB": "nginx"}).up()
    yield s
    s.down()


def test_trace_through_nginx_is_the_replicas_problem(nginx_stack):
    assert_trace_is_a_problem(nginx_stack.vars["CDCACHE_URL"])


def ready(base):
    try:
        return request(base, "GET", "/ready", timeout=2).status == 200
    except OSError:
        return False


def health_served(base):
    try:
        return metric(base, 'cdcache_http_requests_total{route="GET /health",status="200"}')
    except KeyError:
        return 0


def test_a_restarted_replica_is_back_behind_nginx_within_a_second_of_ready(nginx_stack):
    """Clients keep sending through nginx the whole time, so nginx meets the stopped replica's refusals
    until just before it is ready again, as under production load."""
    took = restarted_replica_gets_traffic(nginx_stack)
    report("e2e", f"LB=nginx: a restarted replica got traffic {took * 1000:.0f} ms after its /ready turned 200")


def test_a_restarted_replica_is_back_on_the_shared_port_within_a_second_of_ready(stack):
    """LB=kernel: the replica joins the public port once warm, which is when /ready turns 200."""
    took = restarted_replica_gets_traffic(stack)
    report("e2e", f"LB=kernel: a restarted replica got traffic on the public port {took * 1000:.0f} ms after "
                  "its /ready turned 200")


def restarted_replica_gets_traffic(st):
    """Stops replica-1 and starts it again while a client sends through the public port; returns the
    seconds from its /ready turning 200 to the first request the public port passes it."""
    lb = st.vars["CDCACHE_URL"]
    r1 = st.vars["REPLICA_URLS"].split(",")[0]
    stop, failed = threading.Event(), []

    def load():
        while not stop.is_set():
            try:
                if request(lb, "GET", "/health", timeout=5).status != 200:
                    failed.append("status")
            except OSError as e:
                failed.append(repr(e))
            time.sleep(0.005)

    t = threading.Thread(target=load)
    t.start()
    try:
        st.supervisorctl("stop", "replica-1")
        time.sleep(1)
        # supervisorctl start returns once the program has run for startsecs: /ready is watched
        # meanwhile, from the first moment the replica answers
        starter = threading.Thread(target=st.supervisorctl, args=("start", "replica-1"))
        starter.start()
        wait_until(lambda: ready(r1), 60, interval=0.01, what="replica-1 ready")
        ready_at = time.monotonic()
        before = health_served(r1)
        while health_served(r1) <= before:
            assert time.monotonic() - ready_at < 15, "nginx sends nothing to the restarted replica"
            time.sleep(0.02)
        took = time.monotonic() - ready_at
        starter.join(60)
    finally:
        stop.set()
        t.join(10)
    assert not failed, f"requests through the public port failed while a replica restarted: {failed[:3]}"
    assert took <= 1.0, f"the public port sent the restarted replica its first request {took:.2f} s after /ready"
    return took
