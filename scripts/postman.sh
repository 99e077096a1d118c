#!/usr/bin/env bash
# Runs the Postman collection (postman/) with newman against a running cdcache.
#   scripts/postman.sh URL [newman options...]
# URL is the load balancer (stack.env's CDCACHE_URL); CDCACHE_TOKEN, when set, becomes the environment's
# token (a stack started with AUTH=1). Extra options go to `newman run` (reporters, --bail, ...).
# Exits non-zero when any assertion fails. newman itself comes from scripts/newman-fetch.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
url=${1:?usage: scripts/postman.sh URL [newman options...]}
shift
newman=$("$here/scripts/newman-fetch.sh")
args=(run "$here/postman/cdcache.postman_collection.json"
      --environment "$here/postman/cdcache.postman_environment.json"
      --env-var "baseUrl=$url" --color off --disable-unicode)
if [ -n "${CDCACHE_TOKEN:-}" ]; then
    args+=(--env-var "token=$CDCACHE_TOKEN")
fi
exec "$newman" "${args[@]}" "$@"
