#!/usr/bin/env python3
"""Turns Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json, shipped inside the Go module
k8s.io/kubernetes) into the per-kind JSON schemas kubeconform reads from a folder:

    OUT/v<K8S_VERSION>-standalone-strict/<kind>-<group>-<version>.json   (core: <kind>-v1.json)

which is kubeconform's own layout, so `kubeconform -strict -kubernetes-version <K8S_VERSION>
-schema-location OUT` finds them with no template. usage: k8s-schemas.py SWAGGER_JSON OUT K8S_VERSION

Each file is standalone: the kind's definition at the top and, under "definitions", every definition it
reaches through $ref. What the OpenAPI document says loosely is made exact for validation:
- strict: every object that lists its properties gets additionalProperties: false, so a misspelled
  field is an error (kubeconform -strict only adds the strict YAML decoding and the folder's suffix);
- IntOrString (ports, maxUnavailable) accepts a string or an integer, Quantity (cpu: 1, memory: 1Gi)
  a string or a number: the document types both as strings;
- apiVersion and kind accept only the kind's own values.
"""
import copy
import json
import os
import sys

REF = "#/definitions/"


def loosen(node):
    """Walks a schema fragment in place: strict objects, int-or-string values."""
    if isinstance(node, list):
        for n in node:
            loosen(n)
        return
    if not isinstance(node, dict):
        return
    if node.get("format") == "int-or-string":
        node.pop("type", None)
        node.pop("format", None)
        node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for key, val in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            for sub in val.values():
                loosen(sub)
        elif key != "enum":
            loosen(val)


def refs(node, found):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith(REF):
            found.add(r[len(REF):])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def closure(name, defs):
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        found = set()
        refs(defs[n], found)
        todo.extend(found - seen)
    return seen


def file_name(kind, group, version):
    # kubeconform (pkg/registry): "-" + first label of the group, then "-" + version; core: "-" + version
    suffix = f"-{group.split('.')[0].lower()}-{version.lower()}" if group else f"-{version.lower()}"
    return f"{kind.lower()}{suffix}.json"


def main():
    swagger, out, k8s_version = sys.argv[1:4]
    with open(swagger) as f:
        defs = json.load(f)["definitions"]
    defs = copy.deepcopy(defs)
    for name, d in defs.items():
        if name.endswith("util.intstr.IntOrString"):
            defs[name] = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        elif name.endswith("api.resource.Quantity"):
            defs[name] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
        else:
            loosen(d)
    folder = os.path.join(out, f"v{k8s_version}-standalone-strict")
    tmp = folder + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    count = 0
    for name, d in defs.items():
        gvks = d.get("x-kubernetes-group-version-kind") or []
        # A definition that several GVKs share (DeleteOptions, WatchEvent) is no top-level object.
        if len(gvks) != 1 or "properties" not in d:
            continue
        gvk = gvks[0]
        group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
        api_version = f"{group}/{version}" if group else version
        top = copy.deepcopy(d)
        if "apiVersion" in top["properties"]:
            top["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
        if "kind" in top["properties"]:
            top["properties"]["kind"] = {"type": "string", "enum": [kind]}
        needed = closure(name, defs) - {name}
        if needed:
            top["definitions"] = {n: defs[n] for n in sorted(needed)}
        with open(os.path.join(tmp, file_name(kind, group, version)), "w") as f:
            json.dump(top, f, separators=(",", ":"))
        count += 1
    if count < 50:
        sys.exit(f"k8s-schemas: only {count} kinds in {swagger}: not a Kubernetes OpenAPI document?")
    # swap in whole: a half-written folder is never used
    if os.path.isdir(folder):
        os.rename(folder, folder + ".old")
    os.rename(tmp, folder)
    if os.path.isdir(folder + ".old"):
        import shutil
        shutil.rmtree(folder + ".old")
    print(f"{count} kinds in {folder}")


if __name__ == "__main__":
    main()
