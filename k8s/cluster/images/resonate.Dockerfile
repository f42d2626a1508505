# Stand-in for the official Resonate server image on the single-node cluster: a `resonate`
# binary from the machine (PATH or RESONATE_SERVER_BIN), with the entrypoint the chart assumes
# (it passes `serve …`). A Debian base, since the binary may link SQLite against glibc.
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
COPY resonate /usr/local/bin/resonate
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/resonate"]
