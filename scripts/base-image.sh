#!/usr/bin/env bash
# Print the base image to build the service images (services/Dockerfile) and the cluster's
# stand-in images on, so `make images`, `make cluster-up` and `make cluster-e2e` work as written
# on a machine without Docker Hub:
#   1. $BASE_IMAGE when it is set;
#   2. else the Dockerfile's official python image when Docker has it or can pull it;
#   3. else the local Debian trixie base (scripts/docker-base-image.sh), built when missing.
# Only the image name goes to stdout; what it decided goes to stderr.
#
#   OFFICIAL_BASE_IMAGE   the official image to try (default: services/Dockerfile's ARG BASE_IMAGE)
#   LOCAL_BASE_IMAGE      the local base's name (default local/python:3.13-trixie)
#   BASE_IMAGE_BUILDER    what builds the local base (default scripts/docker-base-image.sh)
#   PULL_TIMEOUT          seconds a pull may take before it counts as impossible (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFICIAL=${OFFICIAL_BASE_IMAGE:-$(sed -n 's/^ARG BASE_IMAGE=//p' "$ROOT/services/Dockerfile" | head -1)}
LOCAL=${LOCAL_BASE_IMAGE:-local/python:3.13-trixie}
BUILDER=${BASE_IMAGE_BUILDER:-$ROOT/scripts/docker-base-image.sh}

log() { echo "base-image: $*" >&2; }

if [[ -n "${BASE_IMAGE:-}" ]]; then
  echo "$BASE_IMAGE"
  exit 0
fi
if docker image inspect "$OFFICIAL" >/dev/null 2>&1; then
  echo "$OFFICIAL"
  exit 0
fi
if docker image inspect "$LOCAL" >/dev/null 2>&1; then
  log "using $LOCAL ($OFFICIAL is not here; BASE_IMAGE=$OFFICIAL to pull it instead)"
  echo "$LOCAL"
  exit 0
fi
if pulled=$(timeout "${PULL_TIMEOUT:-120}" docker pull --quiet "$OFFICIAL" 2>&1); then
  echo "$OFFICIAL"
  exit 0
fi
log "cannot pull $OFFICIAL ($(tail -1 <<<"$pulled")): building $LOCAL from Debian's packages instead"
BASE_IMAGE=$LOCAL "$BUILDER" >&2
echo "$LOCAL"
