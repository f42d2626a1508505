#!/usr/bin/env bash
# Build the service images from services/Dockerfile (one target per service) and print their sizes.
# BuildKit when the Docker CLI has it (`docker buildx`), else the legacy builder;
# DOCKER_BUILDKIT=0 or 1 decides instead.
#
#   scripts/images.sh [producer processor topic-init]
#
#   BASE_IMAGE    base of every stage (default: the Dockerfile's official python image;
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

# The build stage trusts this file when it is there and not empty (services/Dockerfile).
mkdir -p .cache/build
if [[ -r "$CA_BUNDLE" ]]; then cp "$CA_BUNDLE" .cache/build/ca-bundle.crt; else : > .cache/build/ca-bundle.crt; fi

case "${DOCKER_BUILDKIT:-}" in
  1) BUILDKIT=1 ;;
  0) BUILDKIT=0 ;;
  *) if docker buildx version > /dev/null 2>&1; then BUILDKIT=1; else BUILDKIT=0; fi ;;
esac
base_args=()
[[ -n "${BASE_IMAGE:-}" ]] && base_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
log "builder: $([[ $BUILDKIT == 1 ]] && echo "BuildKit (docker buildx)" || echo "legacy (no docker buildx)")"

# The legacy builder keeps every stage it built as an untagged image: the build stage's hold the
# CA copy. They are removed after the builds (the three share them as cache until then), and only
# those this run made: other images on the daemon are none of this script's business.
stage_images=()
build() {  # service
  local image="$PREFIX$1:$TAG" logfile=.cache/build/$1.log start=$SECONDS
  log "building $image${BASE_IMAGE:+ on $BASE_IMAGE}"
  local command=(docker build --force-rm)
  [[ $BUILDKIT == 1 ]] && command=(docker buildx build --load)
  DOCKER_BUILDKIT=$BUILDKIT "${command[@]}" -f services/Dockerfile --target "$1" "${base_args[@]}" \
    -t "$image" . > "$logfile" 2>&1 || {
    log "build of $image failed; last lines of $logfile:"
    tail -40 "$logfile" >&2
    exit 1
  }
  [[ $BUILDKIT == 1 ]] || mapfile -t -O "${#stage_images[@]}" stage_images < <(sed -n 's/^ ---> \([0-9a-f]\{12\}\)$/\1/p' "$logfile")
  log "built $image in $((SECONDS - start))s"
}

for svc in "${SERVICES[@]}"; do build "$svc"; done

if [[ ${#stage_images[@]} -gt 0 ]]; then
  dangling=$(docker image ls --quiet --no-trunc --filter dangling=true | cut -c8-19)
  ours=$(printf '%s\n' "${stage_images[@]}" | sort -u | grep -Fxf <(printf '%s\n' "$dangling") || true)
  # shellcheck disable=SC2086
  [[ -z "$ours" ]] || docker image rm $ours > /dev/null 2>&1 || true
fi

printf '%-32s %10s\n' IMAGE SIZE
for svc in "${SERVICES[@]}"; do
  image="$PREFIX$svc:$TAG"
  bytes=$(docker image inspect --format '{{.Size}}' "$image")
  awk -v i="$image" -v b="$bytes" 'BEGIN { printf "%-32s %8.1fMB\n", i, b / 1e6 }'
done
