"""scripts/base-image.sh: which base `make images` / `make cluster-up` build on when nobody set
BASE_IMAGE, run against a stand-in `docker` that knows some images and can or cannot pull."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "base-image.sh"
OFFICIAL = "python:3.13-slim-trixie"  # services/Dockerfile's default
LOCAL = "local/python:3.13-trixie"

# `docker image inspect X` succeeds for the images listed in $DOCKER_HAS; `docker pull X` succeeds
# when $DOCKER_CAN_PULL is 1 (else it fails as a machine without Docker Hub does). Calls are logged.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_LOG"
case "$1 $2" in
  "image inspect") for image in $DOCKER_HAS; do [ "$image" = "$3" ] && exit 0; done; exit 1 ;;
esac
if [ "$1" = pull ]; then
  [ "$DOCKER_CAN_PULL" = 1 ] && exit 0
  echo "Error response from daemon: Get https://registry-1.docker.io/v2/: dial tcp: lookup registry-1.docker.io: no such host" >&2
  exit 1
fi
exit 2
"""


def choose(tmp_path: Path, has: list[str], can_pull: bool, base_image: str = "") -> tuple[str, list[str], bool]:
    """(printed image, docker calls, whether the local base was built)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    built = tmp_path / "built"
    builder = tmp_path / "builder"
    builder.write_text(f'#!/bin/sh\necho "$BASE_IMAGE" > {built}\n')
    builder.chmod(0o755)
    log = tmp_path / "docker.log"
    log.write_text("")
    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_LOG": str(log),
        "DOCKER_HAS": " ".join(has), "DOCKER_CAN_PULL": "1" if can_pull else "0",
        "BASE_IMAGE_BUILDER": str(builder), "BASE_IMAGE": base_image,
    }
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=True)
    if built.exists():
        assert built.read_text().strip() == LOCAL  # the builder was asked for the local name
    return result.stdout.strip(), log.read_text().splitlines(), built.exists()


def test_without_docker_hub_the_local_base_is_built_and_used(tmp_path) -> None:
    image, calls, built = choose(tmp_path, has=[], can_pull=False)
    assert (image, built) == (LOCAL, True)
    assert f"pull --quiet {OFFICIAL}" in calls


def test_a_local_base_built_before_is_used_without_trying_docker_hub(tmp_path) -> None:
    image, calls, built = choose(tmp_path, has=[LOCAL], can_pull=True)
    assert (image, built) == (LOCAL, False)
    assert not [c for c in calls if c.startswith("pull")]


@pytest.mark.parametrize(("has", "can_pull"), [([OFFICIAL], False), ([], True), ([OFFICIAL, LOCAL], True)])
def test_the_official_image_when_docker_has_it_or_can_pull_it(tmp_path, has, can_pull) -> None:
    image, _, built = choose(tmp_path, has=has, can_pull=can_pull)
    assert (image, built) == (OFFICIAL, False)


def test_a_base_image_given_is_used_as_it_is(tmp_path) -> None:
    image, calls, built = choose(tmp_path, has=[], can_pull=False, base_image="mirror.example/python:3.13")
    assert (image, calls, built) == ("mirror.example/python:3.13", [], False)


def test_make_images_and_cluster_up_ask_the_script_when_base_image_is_unset() -> None:
    dry_run = subprocess.run(["make", "-n", "images", "cluster-up"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "BASE_IMAGE": ""}, check=True).stdout
    builds = [line for line in dry_run.splitlines() if "scripts/images.sh" in line or "cluster.sh images" in line]
    assert len(builds) == 2, dry_run  # the service images (once), the cluster's stand-ins
    for line in builds:
        assert 'base=$(BASE_IMAGE="" scripts/base-image.sh) && BASE_IMAGE="$base"' in line, line


# A docker that answers `info`, builds anything (logging its --build-arg BASE_IMAGE) and cannot
# pull; a cluster script, a bootstrap and a pytest that only log how they were called.
FAKE_BUILDING_DOCKER = """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$1" in
  info|build) exit 0 ;;
  buildx) exit 1 ;;
  image) [ "$2" = inspect ] && case "$*" in *Size*) echo 1000000; exit 0 ;; esac; exit 1 ;;
  pull) echo "Error response from daemon: no such host" >&2; exit 1 ;;
esac
exit 0
"""
FAKE_CLUSTER = '#!/bin/sh\necho "cluster $1 BASE_IMAGE=${BASE_IMAGE:-}" >> "$CALLS"\n'
FAKE_PYTEST = '#!/bin/sh\necho "pytest $*" >> "$CALLS"\n'


@pytest.mark.parametrize("target", ["cluster-up", "cluster-e2e"])
def test_make_cluster_targets_build_on_the_local_base_without_docker_hub(tmp_path, target) -> None:
    """`make cluster-up` / `make cluster-e2e` as written, BASE_IMAGE unset, on a machine whose
    Docker has neither base image and cannot pull: the local base is built, and the service
    images, the stand-ins and the add-ons are all built on it."""
    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    bin_dir.mkdir()
    venv.mkdir()
    for path, text in ((bin_dir / "docker", FAKE_BUILDING_DOCKER), (tmp_path / "cluster.sh", FAKE_CLUSTER),
                       (venv / "pytest", FAKE_PYTEST),
                       (tmp_path / "builder", '#!/bin/sh\necho "built $BASE_IMAGE" >> "$CALLS"\n')):
        path.write_text(text)
        path.chmod(0o755)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "BASE_IMAGE_BUILDER": str(tmp_path / "builder"), "DOCKER_BUILDKIT": "0"}
    env.pop("BASE_IMAGE", None)
    subprocess.run(["make", "--no-print-directory", target, f"CLUSTER={tmp_path / 'cluster.sh'}", "BOOTSTRAP=true",
                    f"VENV={venv}", "K8S_TOOLS=true", "IMAGE_PREFIX=unit-test-"],
                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    log = calls.read_text().splitlines()
    assert f"built {LOCAL}" in log
    builds = [line for line in log if line.startswith("docker build")]
    assert builds and all(f"BASE_IMAGE={LOCAL}" in line for line in builds), builds
    assert [line for line in log if line.startswith("cluster ")][:4] == [
        "cluster up BASE_IMAGE=", f"cluster images BASE_IMAGE={LOCAL}", f"cluster addons BASE_IMAGE={LOCAL}",
        *(["cluster down BASE_IMAGE="] if target == "cluster-e2e" else [])]
    assert any(line.startswith("pytest tests/cluster") for line in log) == (target == "cluster-e2e")
