#!/usr/bin/env bash
# Make helm and kind available, building them from their Go modules into a
# repo-local bin directory when they are not already on PATH. Idempotent.
#
#   scripts/k8s-tools.sh            # install what is missing, print one "name=path" line each
#   scripts/k8s-tools.sh --path helm   # print only the path of one tool (installing it if needed)
#
# Versions are pinned here; override with HELM_VERSION / KIND_VERSION.
# Go modules come from the Go module proxy (GOPROXY), so no GitHub access is needed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${K8S_TOOLS_BIN:-$ROOT/.cache/bin}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
KIND_VERSION=${KIND_VERSION:-v0.30.0}
# The Kubernetes minor version helm assumes without a cluster (`helm template`, `helm lint`):
# helm's own release build sets it from its client-go version (v0.37 for helm v3.22).
HELM_K8S_MINOR=${HELM_K8S_MINOR:-37}

# What helm's Makefile sets at link time; without it `helm template` assumes Kubernetes 1.20.
HELM_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  HELM_LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
declare -A LDFLAGS=([helm]="$HELM_LDFLAGS" [kind]="")

declare -A MODULE=(
  [helm]="helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  [kind]="sigs.k8s.io/kind@$KIND_VERSION"
)

log() { echo "k8s-tools: $*" >&2; }

tool_path() {
  local name=$1
  if [[ -x "$BIN/$name" ]]; then echo "$BIN/$name"; return 0; fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  return 1
}

install_tool() {
  local name=$1
  if tool_path "$name" >/dev/null; then return 0; fi
  if ! command -v go >/dev/null 2>&1; then
    log "$name is not on PATH and Go is not installed; install $name yourself (see docs/kubernetes.md)"
    return 1
  fi
  mkdir -p "$BIN"
  log "building $name from ${MODULE[$name]} (first time only, takes a few minutes)"
  # CGO off: static binaries; GOFLAGS cleared so a user's -mod=vendor does not interfere.
  CGO_ENABLED=0 GOFLAGS= GOBIN="$BIN" go install -trimpath -ldflags="-s -w ${LDFLAGS[$name]}" "${MODULE[$name]}"
}

if [[ "${1:-}" == "--path" ]]; then
  install_tool "$2"
  tool_path "$2"
  exit 0
fi

status=0
for name in "${@:-helm kind}"; do
  for n in $name; do
    if install_tool "$n"; then echo "$n=$(tool_path "$n")"; else status=1; fi
  done
done
exit $status
