"""compose.yaml: after variable interpolation (as docker compose does it) the file is valid against the
Compose Specification's JSON schema (schema/compose-spec.json of the Go module
github.com/compose-spec/compose-go/v2, the schema docker compose validates with), and invalid files are
rejected by the same check. Also: the write token stays required, the port and the Debezium image come
from variables, PostgreSQL and Redis keep their data in named volumes."""
import copy
import json
import os
import re

import jsonschema
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = {"CDCACHE_TOKEN": "0123456789abcdef0123456789abcdef"}


class InterpolationError(ValueError):
    pass


VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text, env):
    """The Compose Specification's interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e},
    ${VAR?e}, ${VAR:+r}, ${VAR+r}; defaults may themselves hold variables."""
    def one(m):
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        val = env.get(name)
        unset, empty = val is None, not val
        if op is None:
            return val or ""
        missing = empty if op.startswith(":") else unset
        if op.endswith("-"):
            return interpolate(arg, env) if missing else val
        if op.endswith("?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return val
        return "" if missing else interpolate(arg, env)  # "+"
    return VAR.sub(one, text)


def walk(node, env):
    if isinstance(node, dict):
        return {k: walk(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def load(env=SAMPLE, path=os.path.join(ROOT, "compose.yaml")):
    with open(path) as f:
        return walk(yaml.safe_load(f), env)


@pytest.fixture(scope="module")
def validator(tools):
    with open(tools["COMPOSE_SCHEMA"]) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors(validator, doc):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_is_valid(validator):
    doc = load()
    assert errors(validator, doc) == []
    assert {"postgres", "redis", "migrate", "debezium", "api", "lb"} <= set(doc["services"])


@pytest.mark.parametrize("mutate,expect", [
    (lambda d: d["services"]["api"].update(imagee="cdcache"), "imagee"),               # misspelled key
    (lambda d: d["services"]["lb"].update(ports={"8080": 8080}), "ports"),             # wrong shape
    (lambda d: d["services"]["redis"].update(restart=["always"]), "restart"),           # wrong type
    (lambda d: d["services"]["api"]["depends_on"]["redis"].update(condition="service_happy"), "condition"),
    (lambda d: d.update(volumez={}), "volumez"),                                        # unknown top-level key
])
def test_invalid_compose_files_are_rejected(validator, mutate, expect):
    doc = copy.deepcopy(load())
    mutate(doc)
    errs = errors(validator, doc)
    assert errs and any(expect in e for e in errs), errs


def test_invalid_yaml_text_is_rejected(validator, tmp_path):
    """The same check from the file's text: a service key indented one level too deep is a new service
    with an unknown field, not a silent no-op."""
    with open(os.path.join(ROOT, "compose.yaml")) as f:
        text = f.read()
    bad = text.replace("\n    stop_grace_period:", "\n    stop_grace_periode:", 1)
    assert bad != text
    p = tmp_path / "compose.yaml"
    p.write_text(bad)
    assert errors(validator, load(path=str(p)))


def test_write_token_is_required():
    with pytest.raises(InterpolationError, match="CDCACHE_TOKEN"):
        load(env={})
    with pytest.raises(InterpolationError, match="CDCACHE_TOKEN"):
        load(env={"CDCACHE_TOKEN": ""})
    assert load()["services"]["api"]["environment"]["CDCACHE_AUTH_WRITE_TOKENS"] == SAMPLE["CDCACHE_TOKEN"]


def test_published_port_comes_from_a_variable():
    assert load()["services"]["lb"]["ports"] == ["8080:8080"]
    assert load(env=dict(SAMPLE, CDCACHE_PORT="18080"))["services"]["lb"]["ports"] == ["18080:8080"]


def test_data_lives_in_named_volumes():
    doc = load()
    assert set(doc["volumes"]) == {"pgdata", "redisdata"}
    assert "pgdata:/var/lib/postgresql/data" in doc["services"]["postgres"]["volumes"]
    assert "redisdata:/data" in doc["services"]["redis"]["volumes"]


def test_debezium_image_is_a_pinned_variable():
    with open(os.path.join(ROOT, "debezium", "VERSION")) as f:
        version = f.read().strip()
    assert load()["services"]["debezium"]["image"].endswith(":" + version)
    custom = "mirror.example/debezium/server:" + version
    assert load(env=dict(SAMPLE, DEBEZIUM_IMAGE=custom))["services"]["debezium"]["image"] == custom
    for name, svc in load()["services"].items():
        if "image" in svc and "/" in svc["image"]:
            first = svc["image"].split("/")[0]
            assert not ("." in first or ":" in first or first == "localhost"), f"{name}: {svc['image']}"


def test_interpolation_follows_the_specification():
    env = {"A": "a", "E": ""}
    assert interpolate("$$A ${A} $A ${B:-d} ${E:-d} ${E-d} ${B-${A}} ${A:+r} ${E+r} ${B+r}", env) == \
        "$A a a d d  a r r "
    with pytest.raises(InterpolationError):
        interpolate("${E:?must}", env)
    assert interpolate("${E?must}", env) == ""
