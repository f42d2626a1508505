#!/bin/sh
# The entrypoint of the PostgreSQL stand-in (postgres.Dockerfile), after the official image's:
# on an empty PGDATA, initdb with POSTGRES_USER as the superuser and POSTGRES_PASSWORD as its
# password (scram-sha-256 over TCP from anywhere, trust on the local socket), then POSTGRES_DB
# created; then `postgres` with the arguments given (`postgres -c port=…`). A PGDATA that holds a
# database is started as it is: a restarted pod keeps its data.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (the superuser's password)}"
USER_NAME=${POSTGRES_USER:-postgres}
DATABASE=${POSTGRES_DB:-$USER_NAME}
[ "${1:-}" = postgres ] && shift

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres-start: initialising $PGDATA (superuser $USER_NAME, database $DATABASE)"
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$USER_NAME" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$DATABASE" != postgres ]; then
    echo "CREATE DATABASE \"$DATABASE\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
exec postgres -D "$PGDATA" "$@"
