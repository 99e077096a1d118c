#!/usr/bin/env bash
# Installs what tests/deploy needs, all from package registries, cached under ~/.cache/cdcache and
# never in the repo; idempotent and quiet when everything is there (scripts/deps.sh calls it):
#  - kubeconform, built from its Go module (pinned) with the Go toolchain;
#  - Kubernetes' JSON schemas: the OpenAPI document api/openapi-spec/swagger.json inside the Go module
#    k8s.io/kubernetes (pinned), converted by scripts/k8s-schemas.py into kubeconform's folder layout
#    (kubeconform would otherwise download schemas from a site this project cannot rely on);
#  - the Compose Specification's JSON schema, schema/compose-spec.json inside the Go module
#    github.com/compose-spec/compose-go/v2 (pinned), the one docker compose itself validates with;
#  - python3 jsonschema and PyYAML.
# Writes $CACHE/deploy-tools.env (KUBECONFORM, K8S_SCHEMAS, K8S_VERSION, COMPOSE_SCHEMA) for the tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

KUBECONFORM_VERSION=v0.8.0
K8S_VERSION=1.34.4
COMPOSE_GO_VERSION=v2.16.2

cache=${CDCACHE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cdcache}
bin=$cache/bin
schemas=$cache/k8s-schemas
compose_schema=$cache/compose-spec/$COMPOSE_GO_VERSION/compose-spec.json
mkdir -p "$bin" "$schemas" "$(dirname "$compose_schema")"

say() { echo "deploy-tools: $*" >&2; }
sudo_=""
[ "$(id -u)" = 0 ] || sudo_=sudo

# --- Python: jsonschema, PyYAML ---
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
    say "installing python3 jsonschema and PyYAML"
    python3 -m pip install -q jsonschema pyyaml >/dev/null 2>&1 ||
        python3 -m pip install -q --break-system-packages jsonschema pyyaml >/dev/null 2>&1 ||
        { $sudo_ apt-get update -q >/dev/null || true
          $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-jsonschema python3-yaml >/dev/null; }
fi

# --- Go toolchain ---
PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
    say "installing Debian's Go toolchain"
    $sudo_ apt-get update -q >/dev/null || true
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go >/dev/null
fi
# A module asking for a newer Go than the installed one gets it from the module proxy (golang.org/toolchain).
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

# go mod download MODULE@VERSION: prints the folder the module was unpacked in (the Go module cache).
moddir() {
    local dir
    dir=$(cd "$cache" && go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    [ -d "$dir" ] || { say "go mod download $1 gave no folder"; exit 1; }
    echo "$dir"
}

# --- kubeconform ---
stamp=$bin/.kubeconform-$KUBECONFORM_VERSION
if [ ! -x "$bin/kubeconform" ] || [ ! -f "$stamp" ]; then
    say "building kubeconform $KUBECONFORM_VERSION"
    (cd "$cache" && GOBIN=$bin go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION") >/dev/null 2>&1 ||
        (cd "$cache" && GOBIN=$bin go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")
    rm -f "$bin"/.kubeconform-*
    touch "$stamp"
fi

# --- Kubernetes schemas ---
k8s_out=$schemas/v$K8S_VERSION-standalone-strict
if [ ! -f "$k8s_out/deployment-apps-v1.json" ] || [ "$here/scripts/k8s-schemas.py" -nt "$k8s_out" ]; then
    say "Kubernetes $K8S_VERSION schemas from the Go module k8s.io/kubernetes"
    dir=$(moddir "k8s.io/kubernetes@v$K8S_VERSION")
    python3 "$here/scripts/k8s-schemas.py" "$dir/api/openapi-spec/swagger.json" "$schemas" "$K8S_VERSION" >/dev/null
fi

# --- Compose Specification schema ---
if [ ! -s "$compose_schema" ]; then
    say "Compose Specification schema from the Go module github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION"
    dir=$(moddir "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION")
    cp "$dir/schema/compose-spec.json" "$compose_schema.tmp"
    chmod 0644 "$compose_schema.tmp"
    mv "$compose_schema.tmp" "$compose_schema"
fi

cat >"$cache/deploy-tools.env.tmp" <<EOF
KUBECONFORM=$bin/kubeconform
KUBECONFORM_VERSION=$KUBECONFORM_VERSION
K8S_SCHEMAS=$schemas
K8S_VERSION=$K8S_VERSION
COMPOSE_SCHEMA=$compose_schema
COMPOSE_GO_VERSION=$COMPOSE_GO_VERSION
EOF
mv "$cache/deploy-tools.env.tmp" "$cache/deploy-tools.env"
