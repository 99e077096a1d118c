#!/usr/bin/env bash
# Installs the tools that check openapi.yaml, pinned, into the cache folder (never system-wide):
#   $CDCACHE_TOOLS/node   Redocly CLI (npm), the spec linter:        $CDCACHE_TOOLS/node/node_modules/.bin/redocly
#   $CDCACHE_TOOLS/venv-schemathesis  Schemathesis (PyPI), the live conformance tester: .../bin/schemathesis
# CDCACHE_TOOLS defaults to ~/.cache/cdcache. Idempotent and quiet when both are present at the pinned
# versions; prints the two paths with `api-tools.sh paths`. Called by scripts/deps.sh.
set -euo pipefail
REDOCLY_VERSION=2.77.0
SCHEMATHESIS_VERSION=4.32.5
tools=${CDCACHE_TOOLS:-$HOME/.cache/cdcache}
redocly=$tools/node/node_modules/.bin/redocly
st=$tools/venv-schemathesis/bin/schemathesis

if [ "${1:-}" = paths ]; then
    echo "REDOCLY=$redocly"
    echo "SCHEMATHESIS=$st"
    exit 0
fi

mkdir -p "$tools"
if [ "$("$redocly" --version 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
    echo "deps: installing @redocly/cli $REDOCLY_VERSION into $tools/node" >&2
    command -v npm >/dev/null || { echo "deps: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
    mkdir -p "$tools/node"
    npm install --prefix "$tools/node" --no-audit --no-fund --loglevel=error --no-save \
        "@redocly/cli@$REDOCLY_VERSION" >/dev/null
fi
# The newest Python 3.12+ at hand, else python3. CPython 3.11 before 3.11.8 (this machine's 3.11.7,
# Debian 12's 3.11.2) can fail ast.parse with "SystemError: AST constructor recursion depth mismatch"
# after an earlier parse error in the same thread; Hypothesis parses lambdas' source while
# Schemathesis builds its coverage cases, so the coverage phase dies with it.
pick_python() {
    local c v
    for c in python3.13 python3.12; do
        "$c" -c 'import sys' >/dev/null 2>&1 && { echo "$c"; return; }
    done
    if command -v pyenv >/dev/null 2>&1; then
        v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]\.[0-9]+$' | sort -V | tail -1)
        [ -n "$v" ] && [ -x "$(pyenv root)/versions/$v/bin/python3" ] &&
            { echo "$(pyenv root)/versions/$v/bin/python3"; return; }
    fi
    echo python3
}

if ! "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "deps: installing schemathesis $SCHEMATHESIS_VERSION into $tools/venv-schemathesis" >&2
    rm -rf "$tools/venv-schemathesis"
    "$(pick_python)" -m venv "$tools/venv-schemathesis"
    "$tools/venv-schemathesis/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null
fi
