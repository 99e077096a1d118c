#!/usr/bin/env bash
# Installs what the project needs and the machine lacks: Debian packages (build, stack, tests), pytest,
# the Debezium Server distribution (through scripts/debezium-fetch.sh), newman, pinned, for the Postman
# collection (through scripts/newman-fetch.sh; node and npm from Debian when the machine has neither), the
# OpenAPI linter and conformance tester (through scripts/api-tools.sh), the hit-ratio benchmark's reference
# policies (libcachesim, through scripts/bench-tools.sh), and the deployment checks' tools and schemas
# (through scripts/deploy-tools.sh), all cached in ~/.cache/cdcache. Idempotent and quiet when
# everything is present. `deps.sh build` installs only what compiling needs; `deps.sh deploy` only the
# deployment checks'.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
if [ "$what" = deploy ]; then exec "$here/scripts/deploy-tools.sh"; fi

build_pkgs=(build-essential meson ninja-build pkg-config libpq-dev libssl-dev libhiredis-dev libcivetweb-dev
            libcjson-dev libcyaml-dev libcriterion-dev python3-yaml)
stack_pkgs=(postgresql postgresql-contrib redis-server redis-tools nginx-light curl openssl maven procps wrk gnuplot-nox supervisor)
# prometheus: promtool checks /metrics and the alert rules; `make observe` runs the binary itself
tool_pkgs=(clang libclang-rt-14-dev clang-format prometheus python3-venv)

missing=()
want=("${build_pkgs[@]}")
[ "$what" = build ] || want+=("${stack_pkgs[@]}" "${tool_pkgs[@]}")
# node and npm run newman; a machine may have them from elsewhere than Debian's packages
if [ "$what" != build ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    want+=(nodejs npm)
fi
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo_ apt-get update -q >/dev/null || true
    $sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts the packaged services; the project runs its own on private ports instead.
    for svc in redis-server nginx postgresql supervisor prometheus prometheus-node-exporter; do
        $sudo_ service "$svc" stop >/dev/null 2>&1 || true
    done
fi
# The build embeds openapi.yaml with the Python meson runs, which needs PyYAML (Debian's python3-yaml
# covers Debian's python3; another python3 first on PATH gets it from pip).
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "deps: installing PyYAML" >&2
    python3 -m pip install -q pyyaml >/dev/null 2>&1 || true
fi
[ "$what" = build ] && exit 0

if ! python3 -m pytest --version >/dev/null 2>&1; then
    echo "deps: installing pytest" >&2
    python3 -m pip install -q pytest >/dev/null 2>&1 || apt-get install -y -q python3-pytest >/dev/null
fi
"$here/scripts/debezium-fetch.sh" >/dev/null
"$here/scripts/newman-fetch.sh" >/dev/null
"$here/scripts/api-tools.sh"
"$here/scripts/bench-tools.sh"
"$here/scripts/deploy-tools.sh"
