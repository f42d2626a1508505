#!/usr/bin/env bash
# Build a local Python base image without any container registry: debootstrap a minimal
# Debian trixie (python3 3.13, python3-venv, ca-certificates, tini) and `docker import` it.
# CI uses it in place of the official python image (see BASE_IMAGE in scripts/images.sh).
# Skipped when the image already exists; FORCE=1 rebuilds it. Takes about two minutes.
#
#   BASE_IMAGE   image name to create (default local/python:3.13-trixie)
#   MIRROR       Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${BASE_IMAGE:-local/python:3.13-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=trixie

log() { echo "docker-base-image: $*" >&2; }

if [[ -z "${FORCE:-}" ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists (FORCE=1 to rebuild)"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/base-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs

log "debootstrap $SUITE minbase from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
  "$SUITE" "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || {
  tail -30 "$WORK/debootstrap.log" >&2
  exit 1
}

# Slim the tree and remove what belongs to this host rather than to an image.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/bootstrap.log "$ROOTFS"/tmp/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
  "$ROOTFS"/usr/share/info/*
: > "$ROOTFS"/etc/resolv.conf   # docker provides its own
echo localhost > "$ROOTFS"/etc/hostname
cat > "$ROOTFS"/etc/apt/sources.list <<SRC
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC

log "importing as $IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
docker run --rm "$IMAGE" sh -c 'echo "python $(python3 -c "import sys; print(sys.version.split()[0])"), debian $(cat /etc/debian_version), $(tini --version)"' >&2
docker image ls "$IMAGE"
