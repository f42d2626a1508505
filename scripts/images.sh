#!/usr/bin/env bash
# Build the service images with the legacy builder (DOCKER_BUILDKIT=0) and print their sizes.
#
#   scripts/images.sh [producer processor topic-init]
#
#   BASE_IMAGE    base for both stages (default: the Dockerfiles' official python image;
#                 CI passes local/python:3.13-trixie from scripts/docker-base-image.sh)
#   IMAGE_PREFIX  image name prefix (default tombstone-), IMAGE_TAG (default dev)
#   CA_BUNDLE     CA bundle the build stage trusts for package downloads
#                 (default /etc/ssl/certs/ca-certificates.crt when it exists)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PREFIX=${IMAGE_PREFIX:-tombstone-}
TAG=${IMAGE_TAG:-dev}
SERVICES=("$@")
[[ ${#SERVICES[@]} -gt 0 ]] || SERVICES=(producer processor topic-init)
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "images: $*" >&2; }

# The Dockerfiles always COPY this file; an empty one means "no extra CAs".
mkdir -p .cache/build
if [[ -r "$CA_BUNDLE" ]]; then cp "$CA_BUNDLE" .cache/build/ca-bundle.crt; else : > .cache/build/ca-bundle.crt; fi

build() {  # name, log, docker build arguments…
  local image=$1 logfile=.cache/build/$2.log start=$SECONDS
  shift 2
  log "building $image${BASE_IMAGE:+ on $BASE_IMAGE}"
  DOCKER_BUILDKIT=0 docker build --force-rm "$@" -t "$image" . > "$logfile" 2>&1 || {
    log "build of $image failed; last lines of $logfile:"
    tail -40 "$logfile" >&2
    exit 1
  }
  log "built $image in $((SECONDS - start))s"
}

# The shared stages: every package resolved from uv.lock (builder), and the runtime base.
base_args=()
[[ -n "${BASE_IMAGE:-}" ]] && base_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
BUILDER="${PREFIX}builder:$TAG"
RUNTIME="${PREFIX}runtime:$TAG"
build "$BUILDER" builder -f services/base.Dockerfile --target builder "${base_args[@]}"
build "$RUNTIME" runtime -f services/base.Dockerfile --target runtime "${base_args[@]}"

for svc in "${SERVICES[@]}"; do
  build "$PREFIX$svc:$TAG" "$svc" -f "services/$svc/Dockerfile" \
    --build-arg "BUILDER=$BUILDER" --build-arg "RUNTIME=$RUNTIME"
done

# The legacy builder leaves the build stages behind as dangling images; they hold the CA copy
# (so does the builder image, which is local only and never a base of a final stage).
docker image prune -f > /dev/null

printf '%-32s %10s\n' IMAGE SIZE
for svc in "${SERVICES[@]}"; do
  image="$PREFIX$svc:$TAG"
  bytes=$(docker image inspect --format '{{.Size}}' "$image")
  awk -v i="$image" -v b="$bytes" 'BEGIN { printf "%-32s %8.1fMB\n", i, b / 1e6 }'
done
