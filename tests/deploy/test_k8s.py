"""deploy/k8s: every manifest passes kubeconform -strict against Kubernetes' own schemas (from the Go module
k8s.io/kubernetes, converted by scripts/k8s-schemas.py), and what the manifests say agrees with the rest
of the project: the replica's config passes `cdcache check-config`, probes and ports match the listeners,
the drain fits in the grace period, the copies of Debezium's properties and the Redis ACL are the repo's."""
import glob
import os
import re
import subprocess
import tempfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

K8S = os.path.join(ROOT, "deploy", "k8s")
MANIFESTS = sorted(p for p in glob.glob(os.path.join(K8S, "*.yaml")) if not p.endswith("kustomization.yaml"))
BUILD = os.path.join(ROOT, os.environ.get("CDCACHE_BUILD", "build"))


def docs():
    out = []
    for p in MANIFESTS:
        with open(p) as f:
            out += [(os.path.basename(p), d) for d in yaml.safe_load_all(f) if d]
    return out


def find(kind, name):
    for _, d in docs():
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise KeyError(f"{kind}/{name}")


def kubeconform(tools, *args, stdin=None):
    return subprocess.run([tools["KUBECONFORM"], "-strict", "-summary", "-kubernetes-version", tools["K8S_VERSION"],
                           "-schema-location", tools["K8S_SCHEMAS"], *args],
                          input=stdin, capture_output=True, text=True)


def summary(out):
    m = re.search(r"Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)", out)
    assert m, out
    return tuple(map(int, m.groups()))


def test_every_manifest_is_valid_kubernetes(tools):
    r = kubeconform(tools, *MANIFESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    # every document was checked against a schema: none skipped for want of one
    assert summary(r.stdout) == (len(docs()), 0, 0, 0), r.stdout
    kinds = {d["kind"] for _, d in docs()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret",
            "StatefulSet"} <= kinds


BAD_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
        - name: bad
          image: cdcache
          imagePullPolicly: IfNotPresent
"""


@pytest.mark.parametrize("text,expect", [
    (BAD_DEPLOYMENT, "imagePullPolicly"),                                            # misspelled field
    (BAD_DEPLOYMENT.replace("  imagePullPolicly: IfNotPresent\n", "").replace(
        "spec:\n  selector", "spec:\n  replicas: two\n  selector"), "replicas"),     # wrong type
    (BAD_DEPLOYMENT.replace("  imagePullPolicly: IfNotPresent\n", "").replace("kind: Deployment",
                                                                               "kind: Deploymnet"), "schema"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, protocl: TCP}]\n", "protocl"),
])
def test_invalid_manifests_are_rejected(tools, text, expect):
    r = kubeconform(tools, "-", stdin=text)
    assert r.returncode != 0, r.stdout
    assert expect in r.stdout, r.stdout
    valid, invalid, errors, skipped = summary(r.stdout)
    assert valid == 0 and invalid + errors == 1


def test_a_typo_in_our_own_deployment_is_rejected(tools):
    with open(os.path.join(K8S, "deployment.yaml")) as f:
        text = f.read()
    bad = text.replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", 1)
    assert bad != text
    r = kubeconform(tools, "-", stdin=bad)
    assert r.returncode != 0 and "terminationGracePeriodSecond" in r.stdout, r.stdout


def test_kustomization_lists_every_manifest():
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    assert sorted(k["resources"]) == sorted(os.path.basename(p) for p in MANIFESTS)
    names = {i["name"] for i in k["images"]}
    used = set()
    for _, d in docs():
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            used.add(c["image"].split(":")[0])
    assert used <= names, f"images not settable through kustomization.yaml: {used - names}"


def test_no_image_names_a_registry():
    """Images are unqualified names: the operator sets the registry (kustomize `images:`). A registry
    host is the first path component when it holds a dot or a port, or is localhost."""
    for fname, d in docs():
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            first = c["image"].split("/")[0]
            assert "/" not in c["image"] or not ("." in first or ":" in first or first == "localhost"), \
                f"{fname}: {c['image']} names a registry"


def test_copies_are_the_repos_files():
    props = find("ConfigMap", "debezium-config")["data"]["application.properties"]
    with open(os.path.join(ROOT, "debezium", "application.properties")) as f:
        assert props == f.read(), "deploy/k8s/debezium.yaml: application.properties differs from debezium/"
    acl = find("ConfigMap", "redis-acl")["data"]["users.acl.in"]
    with open(os.path.join(ROOT, "scripts", "redis-users.acl.in")) as f:
        assert acl == f.read(), "deploy/k8s/redis.yaml: users.acl.in differs from scripts/redis-users.acl.in"
    tag = find("Deployment", "debezium")["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[1]
    with open(os.path.join(ROOT, "debezium", "VERSION")) as f:
        assert tag == f.read().strip()


def replica_config():
    return yaml.safe_load(find("ConfigMap", "cdcache-config")["data"]["config.yaml"])


def container(deploy, name):
    return next(c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def port_of(listen):
    return int(str(listen).rsplit(":", 1)[-1])


def test_probes_ports_and_drain_agree_with_the_config():
    cfg = replica_config()
    dep = find("Deployment", "cdcache")
    pod = dep["spec"]["template"]["spec"]
    c = container(dep, "cdcache")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == port_of(cfg["http"]["listen"])
    assert ports["admin"] == port_of(cfg["http"]["admin_listen"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "admin"}
    # SIGTERM: not ready for shutdown_delay_ms, then in-flight requests (request_timeout_ms at most) finish
    drain_s = (cfg["http"]["shutdown_delay_ms"] + cfg["http"]["request_timeout_ms"]) / 1000
    assert pod["terminationGracePeriodSeconds"] > drain_s
    # the endpoint must be gone before the replica stops accepting: a few readiness periods
    assert cfg["http"]["shutdown_delay_ms"] / 1000 >= 2 * c["readinessProbe"]["periodSeconds"]
    svc = find("Service", "cdcache")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert find("PodDisruptionBudget", "cdcache")["spec"]["selector"] == dep["spec"]["selector"]
    assert find("HorizontalPodAutoscaler", "cdcache")["spec"]["scaleTargetRef"]["name"] == "cdcache"


def size(text):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?B?", str(text))
    return int(m.group(1)) * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[m.group(2)]


def test_memory_covers_the_cache_bound():
    cfg = replica_config()
    res = container(find("Deployment", "cdcache"), "cdcache")["resources"]
    bound = size(cfg["cache"]["max_bytes"])
    assert size(res["requests"]["memory"]) > bound
    assert size(res["limits"]["memory"]) >= size(res["requests"]["memory"])


def known_config_env():
    with open(os.path.join(ROOT, "include", "cdcache", "config.h")) as f:
        keys = re.findall(r"X\((\w+), (\w+),", f.read())
    return {f"CDCACHE_{s.upper()}_{k.upper()}" for s, k in keys}


def test_env_and_secrets_are_wired():
    secret = find("Secret", "cdcache-secrets")["stringData"]
    known = known_config_env()
    for fname, d in docs():
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "cdcache-secrets" and ref["key"] in secret, f"{fname}: {e}"
                if d["metadata"]["name"] == "cdcache" and e["name"].startswith("CDCACHE_"):
                    assert e["name"] in known, f"{fname}: {e['name']} is no config key"
            for m in c.get("volumeMounts", []):
                vol = next(v for v in spec["volumes"] + d["spec"].get("volumeClaimTemplates", [])
                           if v.get("name", v.get("metadata", {}).get("name")) == m["name"])
                if "configMap" in vol:
                    find("ConfigMap", vol["configMap"]["name"])


def serve_env(secret_values):
    dep = find("Deployment", "cdcache")
    env = {"PATH": os.environ["PATH"]}
    for e in container(dep, "cdcache")["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            env[e["name"]] = secret_values[e["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[e["name"]] = "cdcache-7d9f8b6c5-x2x4q"  # fieldRef metadata.name: a pod's name
    return env


def check_config(env):
    cdcache = os.path.join(BUILD, "cdcache")
    assert os.access(cdcache, os.X_OK), f"{cdcache} is not built (make build; make test-deploy builds it)"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(find("ConfigMap", "cdcache-config")["data"]["config.yaml"])
        f.flush()
        return subprocess.run([cdcache, "check-config", "--config", f.name], env=env, capture_output=True,
                              text=True)


def test_replica_config_passes_check_config():
    secret = {k: "0123456789abcdef" for k in find("Secret", "cdcache-secrets")["stringData"]}
    r = check_config(serve_env(secret))
    assert r.returncode == 0, r.stdout + r.stderr


def test_placeholder_secret_stops_the_replica():
    """secret.yaml's placeholders must not deploy a working write token by accident."""
    r = check_config(serve_env(find("Secret", "cdcache-secrets")["stringData"]))
    assert r.returncode != 0 and "auth.write_tokens" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "REPLACE" not in r.stdout + r.stderr  # secrets are never echoed
