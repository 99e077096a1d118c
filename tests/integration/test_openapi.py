"""The API description against the tools and the server. openapi.yaml is the base the server generates its
served document from (src/apidoc.c: the /items paths are the template of every declared resource's); so:

- the base lints clean (Redocly CLI, recommended-strict: 0 errors, 0 warnings);
- the documents apidoc_render() generates lint clean too, for the shipped resources (items) and for the
  second real schema (items, shop.customers, shop.orders): the unit test binary test_apidoc writes them
  (its `dump` test, with APIDOC_DUMP_DIR) and Redocly lints the JSON and the YAML;
- each replica serves its generated document: /openapi.yaml is the same tree as /openapi.json (no longer
  the file byte for byte: the file describes only items, the served document every declared resource),
  with the paths of the resources it declares, and it lints clean;
- a live replica conforms to its served document under Schemathesis's property-based requests (status
  codes, content types, response schemas and headers documented; undocumented methods answer 405 with
  Allow; bodies the document allows are accepted and bodies it forbids are rejected): a replica serving
  items as today, and one serving shop.customers and shop.orders.

Both tools are pinned and installed into the cache folder by scripts/api-tools.sh (make deps runs it); a
missing tool fails these tests, never skips them."""
import json
import os
import subprocess

import pytest
import yaml

from harness import BUILD, ROOT, report

SPEC = os.path.join(ROOT, "openapi.yaml")
HERE = os.path.dirname(os.path.abspath(__file__))
APIDOC_TEST = os.path.join(BUILD, "tests", "test_apidoc")
# Examples per operation and phase: enough to reach every documented status of every route, bounded so
# the run stays well under two minutes on two shared cores.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))
QUIET = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}


def tools():
    r = subprocess.run([os.path.join(ROOT, "scripts", "api-tools.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([os.path.join(ROOT, "scripts", "api-tools.sh"), "paths"], capture_output=True,
                         text=True, check=True).stdout
    paths = dict(line.split("=", 1) for line in out.split())
    for name, path in paths.items():
        assert os.access(path, os.X_OK), f"{name} missing at {path}: run make deps"
    return paths


def lint(*files):
    """Redocly lint with the project's rules; asserts 0 errors and 0 warnings."""
    r = subprocess.run([tools()["REDOCLY"], "lint", "--format", "stylish", "--config",
                        os.path.join(ROOT, "redocly.yaml"), *files],
                       capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, **QUIET))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "warning" not in out.lower().replace("deprecation warning", ""), out
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """{"items": (json path, yaml path), "shop": (...)}: the documents apidoc_render() makes from the
    descriptors of tests/test_apidoc.c (inventory.items; items + shop.customers + shop.orders)."""
    out = tmp_path_factory.mktemp("apidoc")
    assert os.access(APIDOC_TEST, os.X_OK), f"{APIDOC_TEST} not built"
    r = subprocess.run([APIDOC_TEST, "--jobs", "1", "--filter", "apidoc/dump"], capture_output=True,
                       text=True, env=dict(os.environ, APIDOC_DUMP_DIR=str(out)), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = {}
    for name in ("items", "shop"):
        j, y = out / f"openapi-{name}.json", out / f"openapi-{name}.yaml"
        assert j.is_file() and y.is_file(), r.stdout + r.stderr
        docs[name] = (str(j), str(y))
    return docs


def test_the_base_lints_clean():
    lint(SPEC)


@pytest.mark.parametrize("name", ["items", "shop"])
def test_the_generated_document_lints_clean(generated, name):
    j, y = generated[name]
    lint(j, y)
    with open(j) as f:
        doc = json.load(f)
    with open(y) as f:
        assert yaml.safe_load(f) == doc, "the YAML is the JSON's tree"
    want = {"/items", "/items/{id}"} | ({"/customers", "/customers/{id}", "/orders", "/orders/{id}"}
                                       if name == "shop" else set())
    assert want <= set(doc["paths"]), sorted(doc["paths"])
    report("openapi", f"redocly: generated {name} document: 0 errors, 0 warnings")


def served(replica, tmp_path, name):
    """The replica's served document (JSON), after checking that its YAML is the same tree; written to
    tmp_path for the linter."""
    j = replica.get("/openapi.json")
    assert j.status == 200 and j.header("content-type") == "application/json", j
    y = replica.get("/openapi.yaml")
    assert y.status == 200 and y.header("content-type") == "application/yaml", y
    doc = j.json()
    assert yaml.safe_load(y.body) == doc, "the YAML is the JSON's tree"
    assert doc["openapi"].startswith("3.1")
    path = tmp_path / f"served-{name}.json"
    path.write_bytes(j.body if isinstance(j.body, bytes) else j.body.encode())
    return doc, str(path)


def test_each_replica_serves_the_document_of_its_resources(replica, shop_replica, tmp_path):
    doc, path = served(replica, tmp_path, "items")
    assert {p for p in doc["paths"] if p.startswith("/items")} == {"/items", "/items/{id}"}
    assert not any(p.startswith(("/customers", "/orders")) for p in doc["paths"])
    lint(path)
    doc, path = served(shop_replica, tmp_path, "shop")
    for p in ("/items", "/items/{id}", "/customers", "/customers/{id}", "/orders", "/orders/{id}"):
        assert p in doc["paths"], (p, sorted(doc["paths"]))
    row = doc["components"]["schemas"]["CustomersRow"]
    assert "cdcache_version" not in row["properties"], "the bookkeeping column is not a member"
    assert row["properties"]["id"]["format"] == "uuid"
    assert "id" not in doc["components"]["schemas"]["OrdersCreate"]["properties"], "GENERATED ALWAYS"
    lint(path)


def schemathesis(replica, name, extra_env=None, extra_args=()):
    """Runs Schemathesis against the replica's served document; returns (returncode, output)."""
    st = tools()["SCHEMATHESIS"]
    junit = os.path.join(BUILD, "test-reports", f"schemathesis-{name}.xml")
    os.makedirs(os.path.dirname(junit), exist_ok=True)
    cmd = [st, "--config-file", os.path.join(HERE, "schemathesis.toml"), "run", replica.url + "/openapi.json",
           "--url", replica.url, "--checks", "all",
           "--max-examples", str(MAX_EXAMPLES), "--seed", os.environ.get("OPENAPI_SEED", "20261122"),
           "--workers", "2", "--generation-database", "none", "--request-timeout", "10",
           "--max-time", "90", "--no-color", "--report", "junit", "--report-junit-path", junit, *extra_args]
    # cwd: Schemathesis keeps a cache folder (.schemathesis/) in its working directory; keep it in the build
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(junit), timeout=170,
                       env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false",
                                SCHEMATHESIS_HOOKS=os.path.join(HERE, "schemathesis_hooks.py"),
                                **(extra_env or {})))
    out = r.stdout + r.stderr
    tail = [line for line in out.splitlines() if line.strip()][-3:]
    report("openapi", f"schemathesis ({name}): " + " / ".join(tail))
    return r.returncode, out


def test_a_live_replica_conforms_to_the_description(replica):
    rc, out = schemathesis(replica, "items")
    assert rc == 0, out[-20000:]


def test_a_shop_replica_conforms_to_its_description(shop_replica):
    """shop.customers (uuid key, varchar, text[], jsonb, numeric(12,2), enum, float8, date, bytea, nullable
    columns) and shop.orders (GENERATED ALWAYS identity key, a foreign key): the generated schemas are
    what the server takes and answers. The foreign key and the enum's labels are state a JSON Schema
    does not carry: the hooks give positive bodies an existing customer (created here) and a label."""
    r = shop_replica.call("POST", "/customers", {"email": "schemathesis-owner@example.com", "name": "owner"})
    if r.status == 409:  # a rerun on the same database
        r = shop_replica.get("/customers?email=eq.schemathesis-owner@example.com")
        assert r.status == 200, r
        cid = r.json()["items"][0]["id"]
    else:
        assert r.status == 201, r
        cid = r.json()["id"]
    rc, out = schemathesis(shop_replica, "shop", {"CDCACHE_ST_CUSTOMER_ID": cid},
                           ["--include-path-regex", "^/(customers|orders)"])
    assert rc == 0, out[-20000:]
