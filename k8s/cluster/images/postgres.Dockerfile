# PostgreSQL standing in for the official `postgres` image (which no registry here serves) for the
# chart's bundled database (postgresql.enabled): Debian's `postgresql` package, and
# postgres-start.sh with the contract of the official image's entrypoint that the chart relies on
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA; initialised on an empty volume;
# `postgres -c …` as args; the postgres user is uid/gid 999; SIGINT to stop; pg_isready on PATH;
# nothing written outside PGDATA, /var/run/postgresql and /tmp, so the root filesystem may be
# read-only).
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/sh postgres \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/* \
 && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-start.sh /usr/local/bin/postgres-start.sh
USER 999:999
EXPOSE 5432
# As the official image: SIGINT is PostgreSQL's fast shutdown (clients disconnected, a checkpoint
# written). SIGTERM would be its smart shutdown, which waits for every client to leave: the
# server's connection pool never does, so a deleted pod would wait for its grace period's SIGKILL.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-start.sh"]
CMD ["postgres"]
