import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "pylib"))


@pytest.fixture(scope="session")
def tools():
    """kubeconform, the Kubernetes schemas and the Compose schema, installed (cached) by
    scripts/deploy-tools.sh from package registries; returns the paths it wrote in deploy-tools.env."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "deploy-tools.sh")], capture_output=True, text=True)
    assert r.returncode == 0, f"scripts/deploy-tools.sh failed:\n{r.stdout}\n{r.stderr}"
    cache = os.environ.get("CDCACHE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cdcache")
    out = {}
    with open(os.path.join(cache, "deploy-tools.env")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            out[k] = v
    return out
