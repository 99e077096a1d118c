#!/usr/bin/env bash
# Installs the hit-ratio benchmark's reference policies, pinned, into the cache folder (never
# system-wide): $CDCACHE_TOOLS/venv-bench, a venv holding libcachesim (PyPI: the libCacheSim authors'
# Python bindings; S3-FIFO, SIEVE, LRU, ARC, W-TinyLFU... as maintained upstream). bench/hitratio.py
# runs itself with that venv's Python. CDCACHE_TOOLS defaults to ~/.cache/cdcache. Idempotent and
# quiet when present at the pinned version; `bench-tools.sh paths` prints the interpreter's path.
# Called by scripts/deps.sh (and by bench/hitratio.py when the venv is missing).
set -euo pipefail
LIBCACHESIM_VERSION=0.3.5
tools=${CDCACHE_TOOLS:-$HOME/.cache/cdcache}
venv=$tools/venv-bench
py=$venv/bin/python

if [ "${1:-}" = paths ]; then
    echo "BENCH_PYTHON=$py"
    exit 0
fi

if [ "$("$py" -c 'import importlib.metadata as m; print(m.version("libcachesim"))' 2>/dev/null)" != \
     "$LIBCACHESIM_VERSION" ]; then
    echo "deps: installing libcachesim $LIBCACHESIM_VERSION into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$tools"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "libcachesim==$LIBCACHESIM_VERSION" >/dev/null
fi
