#!/usr/bin/env bash
# Make a Docker daemon available: install Debian's docker.io when docker is missing, start
# dockerd in the background when none answers, and wait for `docker info` with a deadline.
# Idempotent; a daemon that is already running (systemd, Docker Desktop, …) is left alone.
#
#   DOCKERD_DEADLINE  seconds to wait for the daemon (default 60)
#   DOCKERD_LOG       dockerd's log file (default .cache/dockerd.log)
#   DOCKERD_FLAGS     extra dockerd flags; on hosts that refuse the defaults try
#                     "--storage-driver=vfs" or "--iptables=false --bridge=none"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEADLINE=${DOCKERD_DEADLINE:-60}
LOG=${DOCKERD_LOG:-$ROOT/.cache/dockerd.log}
PIDFILE=$ROOT/.cache/dockerd.pid

log() { echo "docker-daemon: $*" >&2; }

if docker info >/dev/null 2>&1; then
  log "daemon already running ($(docker info --format '{{.ServerVersion}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "no Docker daemon and cannot install one here (needs root and apt-get); install Docker first"
    exit 1
  fi
  log "installing docker.io from Debian"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
fi

if [[ $(id -u) -ne 0 ]]; then
  log "dockerd is installed but not running, and starting it needs root"
  exit 1
fi

mkdir -p "$(dirname "$LOG")"
log "starting dockerd (log: $LOG)"
# setsid: the daemon outlives this script and the shell that ran it.
# shellcheck disable=SC2086
setsid nohup dockerd ${DOCKERD_FLAGS:-} >"$LOG" 2>&1 < /dev/null &
echo $! > "$PIDFILE"

for ((i = 0; i < DEADLINE; i++)); do
  if docker info >/dev/null 2>&1; then
    log "$(docker info --format 'up: {{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}}')"
    exit 0
  fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "dockerd exited early; last lines of $LOG:"
    tail -30 "$LOG" >&2
    exit 1
  fi
  sleep 1
done
log "dockerd did not answer within ${DEADLINE}s; last lines of $LOG:"
tail -30 "$LOG" >&2
exit 1
