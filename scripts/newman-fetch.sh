#!/usr/bin/env bash
# Installs newman (Postman's command-line collection runner), pinned, from npm into a cache folder, and
# prints the path of its executable. Idempotent and quiet: when the pinned version is already there it
# only prints the path. Needs node >= 16 (newman 6's engines field) and npm; deps.sh installs both when
# the machine lacks them.
set -euo pipefail
version=${NEWMAN_VERSION:-6.2.2}
cache=${CDCACHE_CACHE_DIR:-$HOME/.cache/cdcache}
dest="$cache/node/newman-$version"
bin="$dest/node_modules/.bin/newman"

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 16 ]; then
    echo "newman-fetch: newman $version needs node >= 16 (found: $(node --version 2>/dev/null || echo none))" >&2
    exit 1
fi
if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "$version" ]; then
    echo "$bin"
    exit 0
fi
echo "deps: installing newman $version with npm into $dest" >&2
mkdir -p "$cache/node"
tmp=$(mktemp -d "$cache/node/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# a private prefix with its own package.json: nothing global, nothing in the work tree
printf '{"name":"cdcache-newman","private":true}\n' > "$tmp/package.json"
(cd "$tmp" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error --save-exact \
    "newman@$version" >/dev/null)
[ "$("$tmp/node_modules/.bin/newman" --version)" = "$version" ] || { echo "newman-fetch: newman $version did not install" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$bin"
