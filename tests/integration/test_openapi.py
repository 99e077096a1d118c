"""openapi.yaml against the server: the description lints clean (Redocly CLI), and a live replica conforms to
it under Schemathesis's property-based requests (status codes, content types, response schemas and headers
documented; undocumented methods answer 405 with Allow; bodies the spec allows are accepted and bodies it
forbids are rejected). Both tools are pinned and installed into the cache folder by scripts/api-tools.sh."""
import os
import subprocess

from harness import BUILD, ROOT, report

SPEC = os.path.join(ROOT, "openapi.yaml")
HERE = os.path.dirname(os.path.abspath(__file__))
# Examples per operation and phase: enough to reach every documented status of every route, bounded so
# the run stays well under two minutes on two shared cores.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))


def tools():
    r = subprocess.run([os.path.join(ROOT, "scripts", "api-tools.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([os.path.join(ROOT, "scripts", "api-tools.sh"), "paths"], capture_output=True,
                         text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def test_the_description_lints_clean():
    redocly = tools()["REDOCLY"]
    r = subprocess.run([redocly, "lint", "--format", "stylish", "--config",
                        os.path.join(ROOT, "redocly.yaml"), SPEC],
                       capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, REDOCLY_TELEMETRY="off",
                                                                           REDOCLY_SUPPRESS_UPDATE_NOTICE="true"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "warning" not in out.lower().replace("deprecation warning", ""), out


def test_a_live_replica_conforms_to_the_description(replica):
    st = tools()["SCHEMATHESIS"]
    junit = os.path.join(BUILD, "test-reports", "schemathesis.xml")
    os.makedirs(os.path.dirname(junit), exist_ok=True)
    cmd = [st, "--config-file", os.path.join(HERE, "schemathesis.toml"), "run", SPEC, "--url", replica.url, "--checks", "all",
           "--max-examples", str(MAX_EXAMPLES), "--seed", os.environ.get("OPENAPI_SEED", "20261122"),
           "--workers", "2", "--generation-database", "none", "--request-timeout", "10",
           "--max-time", "90", "--no-color", "--report", "junit", "--report-junit-path", junit]
    # cwd: Schemathesis keeps a cache folder (.schemathesis/) in its working directory; keep it in the build
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(junit), timeout=170,
                       env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false",
                                SCHEMATHESIS_HOOKS=os.path.join(HERE, "schemathesis_hooks.py")))
    out = r.stdout + r.stderr
    tail = [line for line in out.splitlines() if line.strip()][-3:]
    report("openapi", "schemathesis: " + " / ".join(tail))
    assert r.returncode == 0, out[-20000:]
