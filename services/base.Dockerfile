# The two images every service image starts from (scripts/images.sh builds them first):
#   --target builder  -> tombstone-builder: the uv workspace, every package resolved from uv.lock
#   --target runtime  -> tombstone-runtime: the base Python, tini as PID 1, a non-root user
# A service's Dockerfile then only picks its package from the builder and copies the venv over.
ARG BASE_IMAGE=python:3.13-slim-trixie

FROM ${BASE_IMAGE} AS builder
# Extra CA bundle for TLS-intercepting proxies; scripts/images.sh writes it (empty when the host
# has none, then the system bundle is used). Only builder-based stages see it, never a final image.
COPY .cache/build/ca-bundle.crt /tmp/ca-bundle.crt
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    PIP_CERT=/tmp/ca-bundle.crt \
    SSL_CERT_FILE=/tmp/ca-bundle.crt \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_CACHE_DIR=/opt/uv-cache
RUN set -eu; \
    [ -s /tmp/ca-bundle.crt ] || cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca-bundle.crt; \
    python3 -m venv /opt/uv; \
    /opt/uv/bin/pip install --quiet uv==0.13.9; \
    ln -s /opt/uv/bin/uv /usr/local/bin/uv; \
    if [ ! -x /usr/bin/tini-static ]; then \
      apt-get update -q; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tini; \
    fi; \
    cp /usr/bin/tini-static /opt/tini
WORKDIR /src
# Workspace metadata first, so the dependency layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/producer/pyproject.toml services/producer/
COPY services/processor/pyproject.toml services/processor/
COPY services/topic-init/pyproject.toml services/topic-init/
COPY tools/devstack/pyproject.toml tools/devstack/
ARG SERVICES="--package tombstone-producer --package tombstone-processor --package tombstone-topic-init"
RUN uv sync --frozen --no-dev --no-install-workspace ${SERVICES}
COPY libs/common/src libs/common/src
COPY services services
# --no-editable: workspace packages become real wheels, so a final image needs nothing from /src.
RUN uv sync --frozen --no-dev --no-editable ${SERVICES}

FROM ${BASE_IMAGE} AS runtime
ARG BASE_IMAGE
LABEL org.opencontainers.image.base.name="${BASE_IMAGE}"
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
COPY --from=builder /opt/tini /usr/bin/tini
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
# tini is PID 1: it forwards SIGTERM to Python and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--"]
