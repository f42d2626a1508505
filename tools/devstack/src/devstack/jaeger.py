"""Jaeger v2 (all-in-one, in-memory storage) for local traces, built from its Go module.

Jaeger 2.13 is the Go module ``github.com/jaegertracing/jaeger`` v1.76.0; ``tools/jaeger`` pins it
(with the replace directive its own go.mod needs). The first build takes several minutes and the
binary is cached in ``.cache/bin``. The module carries no UI assets, so the web UI is a placeholder
page locally; the HTTP API (``/api/traces``) is complete. The Kubernetes chart runs the official
image with the full UI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from devstack.procs import Managed, StackError, http_get

JAEGER_VERSION = "v2.13.0"


def ensure_binary(repo: Path) -> Path:
    binary = repo / ".cache" / "bin" / "jaeger"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise StackError("building Jaeger needs Go (https://go.dev/dl/); tracing stays off without it")
    print("building Jaeger from its Go module (first run only; several minutes) …", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    ldflags = f"-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion={JAEGER_VERSION}"
    result = subprocess.run(
        [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(binary), "github.com/jaegertracing/jaeger/cmd/jaeger"],
        cwd=repo / "tools" / "jaeger",
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise StackError(f"building Jaeger failed:\n{result.stderr[-3000:]}")
    return binary


class Jaeger:
    """All listeners on loopback: OTLP gRPC/HTTP, query API/UI, health."""

    def __init__(self, home: Path, repo: Path, otlp_http_port: int = 4318, otlp_grpc_port: int = 4317,
                 query_port: int = 16686, query_grpc_port: int = 16685, health_port: int = 13133,
                 metrics_port: int = 8888) -> None:
        self.home = home.resolve()
        self.repo = repo.resolve()
        self.ports = {
            "JAEGER_OTLP_HTTP_PORT": otlp_http_port,
            "JAEGER_OTLP_GRPC_PORT": otlp_grpc_port,
            "JAEGER_QUERY_PORT": query_port,
            "JAEGER_QUERY_GRPC_PORT": query_grpc_port,
            "JAEGER_HEALTH_PORT": health_port,
            "JAEGER_METRICS_PORT": metrics_port,
        }
        self.process = Managed("jaeger", self.home)

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['JAEGER_OTLP_HTTP_PORT']}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['JAEGER_QUERY_PORT']}"

    def start(self, timeout: float = 30.0) -> None:
        if self.process.running():
            return
        binary = ensure_binary(self.repo)
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "jaeger.yaml"
        config.write_text(resources.files("devstack.resources").joinpath("jaeger.yaml").read_text())
        health = f"http://127.0.0.1:{self.ports['JAEGER_HEALTH_PORT']}/status"
        env = {name: str(port) for name, port in self.ports.items()} | {"JAEGER_HOST": "127.0.0.1"}
        healthy = lambda: http_get(health, timeout=1)[0] == 200  # noqa: E731
        self.process.start([str(binary), "--config", f"file:{config}"], healthy, timeout, env=env)

    def stop(self) -> None:
        self.process.stop()
