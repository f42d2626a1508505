"""Each service image runs its command as a non-root user under tini, with nothing from the
build (source tree, uv, the build stage's CA bundle) left behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import re
import socket
from pathlib import Path

import pytest

from tests.images.docker import SERVICES, chart_env, docker, inspect_image, run_image

pytestmark = pytest.mark.images

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# An image that grows past this carries something it should not (a compiler, a cache).
MAX_IMAGE_BYTES = 400_000_000


def cert_blocks(text: str) -> set[str]:
    return {re.sub(r"\s+", "", block) for block in PEM.findall(text)}


def sh(image: str, script: str, **kwargs):
    return run_image(image, args=["sh", "-c", script], network_host=False, **kwargs)


def test_the_processor_image_carries_record_admin(images) -> None:
    """docs/kubernetes.md runs the day-two commands in a processor pod."""
    result = run_image(images["processor"], args=["record-admin", "dlq", "replay", "--help"], network_host=False)
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout


@pytest.mark.parametrize("service", list(SERVICES))
def test_help_runs_as_non_root(images, service: str) -> None:
    result = run_image(images[service], args=[SERVICES[service], "--help"], network_host=False)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    uid = sh(images[service], "id -u").stdout.strip()
    assert uid.isdigit() and int(uid) != 0, uid
    assert inspect_image(images[service])["Config"]["User"] == "10001:10001"


@pytest.mark.parametrize("service", list(SERVICES))
def test_tini_is_pid_1_and_the_default_command_is_the_service(images, service: str) -> None:
    config = inspect_image(images[service])["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Cmd"] == [SERVICES[service]]
    pid1 = sh(images[service], "tr '\\0' ' ' < /proc/1/cmdline").stdout
    assert pid1.startswith("/usr/bin/tini -- sh"), pid1


@pytest.mark.parametrize("service", list(SERVICES))
def test_missing_configuration_fails_with_one_line(images, service: str) -> None:
    result = run_image(images[service], env={"KAFKA_BOOTSTRAP_SERVERS": ""}, network_host=False,
                       args=[SERVICES[service]], timeout=60)
    assert result.returncode == 2, result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stderr


@pytest.mark.parametrize("service", list(SERVICES))
def test_packages_are_installed_without_the_source_tree_or_build_tools(images, service) -> None:
    module = {"producer": "tombstone_producer", "processor": "tombstone_processor",
              "topic-init": "tombstone_topic_init"}[service]
    result = run_image(images[service], network_host=False, args=[
        "python", "-c",
        f"import tombstone_common, {module}; print(tombstone_common.__file__); "
        f"print({module}.__file__)",
    ])
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert path.startswith("/opt/venv/lib/"), path
    leftovers = sh(images[service], "ls -d /src /opt/uv /tmp/ca-bundle.crt 2>/dev/null; "
                   "command -v uv gcc cc pip 2>/dev/null; true").stdout.split()
    assert not leftovers, leftovers


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_extra_ca_certificates(images, service: str) -> None:
    image = images[service]
    info = inspect_image(image)
    env_names = {item.split("=", 1)[0] for item in info["Config"]["Env"] or []}
    assert not env_names & {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR"}

    base = (info["Config"].get("Labels") or {}).get("org.opencontainers.image.base.name")
    assert base, "image has no org.opencontainers.image.base.name label"
    if docker("image", "inspect", base).returncode != 0:
        pytest.skip(f"base image {base} is not available locally to compare with")

    def digest(img: str) -> str:
        out = sh(img, "cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null").stdout
        return hashlib.sha256(out.encode()).hexdigest()

    assert digest(image) == digest(base), "the system CA bundle differs from the base image's"

    find = ("find / -xdev \\( -name '*.crt' -o -name '*.pem' \\) -type f 2>/dev/null "
            "| grep -v '^/proc/' | sort")
    added = sorted(set(sh(image, find).stdout.split()) - set(sh(base, find).stdout.split()))
    # Packages from PyPI may ship their own public bundle (certifi); that is not extra trust,
    # but it must not contain a certificate that only the build host trusts.
    assert all(p.startswith("/opt/venv/lib/") for p in added), added
    if HOST_BUNDLE.exists():
        base_blocks = cert_blocks(sh(base, "cat /etc/ssl/certs/ca-certificates.crt").stdout)
        host_only = cert_blocks(HOST_BUNDLE.read_text()) - base_blocks
        for path in added:
            assert not cert_blocks(sh(image, f"cat '{path}'").stdout) & host_only, path
    assert "ca-bundle.crt" not in " ".join(added)


@pytest.mark.parametrize("service", list(SERVICES))
def test_image_is_small(images, service: str) -> None:
    size = inspect_image(images[service])["Size"]
    print(f"{images[service]}: {size / 1e6:.1f} MB")
    assert size < MAX_IMAGE_BYTES, f"{images[service]} is {size / 1e6:.0f} MB"


def test_run_image_passes_env_and_reaches_host_loopback(images) -> None:
    """The helper the e2e tests use: env via -e, host networking for services on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        port = server.getsockname()[1]
        script = ("import os, socket; "
                  f"socket.create_connection(('127.0.0.1', {port}), timeout=10)"
                  ".sendall(os.environ['PROBE'].encode())")
        result = run_image(images["producer"], env={"PROBE": "hello"},
                           args=["python", "-c", script])
        assert result.returncode == 0, result.stderr
        connection, _ = server.accept()
        with connection:
            connection.settimeout(10)
            assert connection.recv(16) == b"hello"


def test_topic_init_image_with_the_chart_env_waits_for_the_broker_and_says_why(images) -> None:
    """The chart's env is valid configuration for the image; with no broker it fails cleanly."""
    from tests.chart.manifests import HelmUnavailable, helm_binary

    try:
        helm_binary()
    except HelmUnavailable as exc:
        pytest.skip(str(exc))
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    env = chart_env("topic-init", bootstrap_servers=f"127.0.0.1:{port}",
                    overrides={"BROKER_WAIT_SECONDS": "3"})
    assert env["TOPIC_PROCESSED"] == "processed" and "KAFKA_SASL_PASSWORD" not in env
    result = run_image(images["topic-init"], env, timeout=90)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error:" in result.stderr and f"127.0.0.1:{port}" in result.stderr, result.stderr


def test_processor_and_producer_images_run_the_pipeline_with_the_chart_env(images, kafka, resonate_server, names, uid):
    """The images, configured exactly as the chart configures them (addresses pointed at the
    local broker and Resonate server), produce and process tombstones end to end."""
    from devstack.procs import free_port, wait_until
    from devstack.procs import http_get
    from harness.kafka import read_until

    port = free_port()
    local = {"bootstrap_servers": kafka.bootstrap, "overrides": names}
    setup = run_image(images["topic-init"], chart_env("topic-init", **local))
    assert setup.returncode == 0, setup.stderr

    processor_env = chart_env(
        "processor", resonate_url=resonate_server.url, bootstrap_servers=kafka.bootstrap,
        overrides={**names, "PROCESSOR_HTTP_PORT": str(port), "DELETE_BATCH_INTERVAL_SECONDS": "0.2"},
    )
    container = f"tombstone-e2e-processor-{uid}"
    started = subprocess.run(
        ["docker", "run", "-d", "--name", container, "--network", "host",
         *[arg for key, value in processor_env.items() for arg in ("-e", f"{key}={value}")],
         images["processor"]],
        capture_output=True, text=True, check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 90, "processor image ready")
        produced = run_image(images["producer"], chart_env("producer", **local), ["record-producer", "-n", "5", "--batches", "2", "--prefix", f"img{uid}"])
        assert produced.returncode == 0, produced.stderr
        records = read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= 5, timeout=120)
        assert sorted(r.key for r in records) == [f"img{uid}-{n:06d}" for n in range(1, 6)]
        assert {json.loads(r.value)["processor"] for r in records} == {"e2e-processor"}
    finally:
        stop = subprocess.run(["docker", "stop", "-t", "30", container], capture_output=True, text=True, check=False)
        status = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", container], capture_output=True, text=True, check=False)
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=False)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    assert stop.returncode == 0
    assert status.stdout.strip() == "0", "SIGTERM through tini: a clean exit\n" + logs.stderr[-3000:]
