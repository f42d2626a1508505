#!/usr/bin/env bash
# Prepares this checkout on a fresh machine: uv, a Python >= 3.12, the locked virtualenv
# (.venv), Java for the local Kafka broker and, when STACK_RESONATE_STORAGE or TEST_RESONATE_STORAGE
# is `postgres`, PostgreSQL for the Resonate server (Debian's `postgresql`). Safe to run again;
# quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null && python_ok "$candidate" \
      && { command -v "$candidate"; return; }
  done
  if command -v pyenv >/dev/null; then  # installed but not the active pyenv version
    for candidate in "$(pyenv root)"/versions/3.1[2-9]*/bin/python3; do
      python_ok "$candidate" && { echo "$candidate"; return; }
    done
  fi
  return 1
}

find_uv() {
  if uv --version >/dev/null 2>&1; then echo uv; return; fi  # (a pyenv shim may exist but fail)
  local python; python=$(command -v python3 || true)
  if [ -n "$python" ] && ! "$python" -m uv --version >/dev/null 2>&1; then
    log "installing uv (pip install --user uv)"
    "$python" -m pip install --quiet --user uv >&2 2>/dev/null || "$python" -m pip install --quiet --user --break-system-packages uv >&2
  fi
  if [ -n "$python" ] && "$python" -m uv --version >/dev/null 2>&1; then echo "$python -m uv"; return; fi
  log "uv is needed: https://docs.astral.sh/uv/getting-started/installation/"; exit 1
}

ensure_java() {
  if command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing a Java runtime for the local Kafka broker (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    log "Java 17+ is needed for the local Kafka broker (e.g. apt-get install openjdk-17-jre-headless)"; exit 1
  fi
}

postgres_found() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null
}

ensure_postgres() {
  case "${STACK_RESONATE_STORAGE:-}${TEST_RESONATE_STORAGE:-}" in *postgres*) ;; *) return ;; esac
  if postgres_found; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing PostgreSQL for the Resonate server (apt-get install postgresql)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    log "PostgreSQL is needed for STACK_RESONATE_STORAGE=postgres (e.g. apt-get install postgresql)"; exit 1
  fi
}

UV=$(find_uv)
ensure_java
ensure_postgres
if [ ! -x .venv/bin/python ] || [ uv.lock -nt .venv/.synced ] || [ pyproject.toml -nt .venv/.synced ]; then
  if [ -x .venv/bin/python ] && python_ok .venv/bin/python; then
    PY=.venv/bin/python
  elif PY=$(find_python); then
    :
  else
    log "no Python >= 3.12 found; asking uv to install one"
    $UV python install 3.12 >&2
    PY=3.12
  fi
  log "syncing .venv from uv.lock (python: $PY)"
  $UV sync --quiet --frozen --python "$PY" >&2
  touch .venv/.synced
fi
