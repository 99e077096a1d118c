#!/usr/bin/env python3
"""Embeds openapi.yaml in the server: writes a C source with the YAML as given and its JSON form
(include/cdcache/openapi.h declares them). Run by meson at build time (a custom_target), so the
served description is always the file in the tree. Fails, and so fails the build, when the YAML does
not parse or holds a value JSON cannot carry (PyYAML's YAML 1.1 reads an unquoted 2026-01-01 as a
date: quote it).

usage: openapi-embed.py openapi.yaml out.c"""
import json
import sys

import yaml


def c_array(name, data):
    lines = [f"const char {name}[] = {{"]
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",")
    lines.append("    0};")
    lines.append(f"const size_t {name}_len = {len(data)};")
    return "\n".join(lines)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        raw = f.read()
    try:
        doc = yaml.safe_load(raw)
        text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (yaml.YAMLError, TypeError, ValueError) as e:
        sys.exit(f"openapi-embed: {src}: {e}")
    if not isinstance(doc, dict) or "openapi" not in doc:
        sys.exit(f"openapi-embed: {src}: not an OpenAPI document")
    with open(out, "w") as f:
        f.write(f"/* Generated from {src.rsplit('/', 1)[-1]} by scripts/openapi-embed.py at build time; "
                "do not edit. */\n")
        f.write('#include "cdcache/openapi.h"\n\n')
        f.write(c_array("openapi_yaml", raw) + "\n\n")
        f.write(c_array("openapi_json", text.encode()) + "\n")


if __name__ == "__main__":
    main()
