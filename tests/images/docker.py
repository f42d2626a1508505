"""Build and run the service images with the local Docker daemon (helpers for tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"producer": "record-producer", "processor": "record-processor",
            "topic-init": "setup-topics"}
LOCAL_BASE = "local/python:3.13-trixie"


def image_name(service: str) -> str:
    prefix = os.environ.get("IMAGE_PREFIX", "tombstone-")
    tag = os.environ.get("IMAGE_TAG", "dev")
    return f"{prefix}{service}:{tag}"


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None when it can."""
    if not shutil.which("docker"):
        return "the docker CLI is not installed (scripts/docker-daemon.sh installs it)"
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return "no Docker daemon answers (start one with scripts/docker-daemon.sh)"
    return None


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def image_exists(image: str) -> bool:
    return docker("image", "inspect", image).returncode == 0


def inspect_image(image: str) -> dict[str, Any]:
    result = docker("image", "inspect", image)
    result.check_returncode()
    return json.loads(result.stdout)[0]


def build_images(services: Sequence[str] = tuple(SERVICES)) -> None:
    """scripts/images.sh for the given services; BASE_IMAGE from the environment, else the
    locally built trixie base when it exists (no registry here), else the Dockerfile default."""
    env = dict(os.environ)
    if not env.get("BASE_IMAGE") and image_exists(LOCAL_BASE):
        env["BASE_IMAGE"] = LOCAL_BASE
    subprocess.run([str(ROOT / "scripts" / "images.sh"), *services], env=env, check=True,
                   timeout=1800)


def missing_images() -> list[str]:
    """The services whose image does not exist (all of them with IMAGES_REBUILD=1)."""
    if os.environ.get("IMAGES_REBUILD") == "1":
        return list(SERVICES)
    return [service for service in SERVICES if not image_exists(image_name(service))]


def ensure_images() -> int:
    """Build the missing images before the tests run (`make test` calls this): a build takes
    minutes, which is the set-up's job, not a test's. Without Docker there is nothing to do."""
    if problem := docker_problem():
        print(f"note: {problem}; the image tests will be skipped")
        return 0
    if missing := missing_images():
        build_images(missing)
    return 0


def run_image(
    image: str,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    timeout: float = 120,
    network_host: bool = True,
    user: str | None = None,
    entrypoint: str | None = None,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm [--network host] -e K=V … IMAGE ARGS``; the completed process.

    ``--network host`` lets the container reach services on the host's loopback (a local
    broker, a Resonate server), so env rendered by the chart works with hostnames pointed at
    127.0.0.1. Raises subprocess.TimeoutExpired (after killing the container) on timeout.
    """
    name = f"tombstone-test-{os.getpid()}-{abs(hash((image, tuple(args)))) % 10**8}"
    command = ["docker", "run", "--rm", "--name", name]
    if network_host:
        command += ["--network", "host"]
    if user:
        command += ["--user", user]
    if entrypoint is not None:
        command += ["--entrypoint", entrypoint]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    command += [*extra, image, *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        raise


def chart_env(
    component: str,
    values: str = "kind",
    *,
    bootstrap_servers: str = "127.0.0.1:9092",
    resonate_url: str | None = None,
    otel_endpoint: str | None = None,
    secrets: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The env the chart renders for ``component``'s main container, with the in-cluster
    addresses replaced by local ones, so `run_image(image, chart_env(...))` runs the image the
    way the cluster would, against services on the host.

    fieldRefs (pod name) become ``e2e-<component>``; secretKeyRefs take their value from
    ``secrets`` (by variable name) or are left out; ``$(VAR)`` references are expanded.
    Needs helm (tests.chart.manifests.helm_binary).
    """
    from tests.chart.manifests import env_of, main_container, render, workload

    container = main_container(workload(render(values), component))
    env: dict[str, str] = {}
    for name, item in env_of(container).items():
        if "value" in item:
            env[name] = str(item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            env[name] = f"e2e-{component}"
        elif secrets and name in secrets:
            env[name] = secrets[name]
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers
    if "RESONATE_URL" in env:
        if resonate_url is None:
            del env["RESONATE_URL"]
        else:
            env["RESONATE_URL"] = resonate_url
    env.pop("OTEL_EXPORTER_OTLP_PROTOCOL", None)
    if otel_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otel_endpoint
    else:
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env["OTEL_TRACES_EXPORTER"] = "none"
    env.update(overrides or {})
    for name, value in env.items():  # Kubernetes' $(VAR) expansion
        for ref, ref_value in env.items():
            value = value.replace(f"$({ref})", ref_value)
        env[name] = value
    return env


if __name__ == "__main__":
    raise SystemExit(ensure_images())
