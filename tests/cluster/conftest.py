"""The cluster tier: the chart installed on the real single-node cluster of `make cluster-up`."""

from __future__ import annotations

import os
import uuid

import pytest

from devstack.resonate import server_binary
from tests.cluster.kube import CHART, CLUSTER_CONFIG, CLUSTER_STATE, Kube

pytestmark = pytest.mark.cluster


def _unavailable(reason: str):
    # In CI a cluster that did not come up is a failed preparation, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: the cluster tier must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """The chart installed, then uninstalled by the last test. Durable when a Resonate server
    binary exists (`scripts/cluster.sh images` then built the server image from it), else in local
    mode. Yields (Kube, release name, durable, the helm flags for the mode)."""
    if not (CLUSTER_STATE / "admin.kubeconfig").exists():
        _unavailable("no cluster: `make cluster-up` assembles one")
    namespace = f"tombstone-{uuid.uuid4().hex[:6]}"
    kube = Kube(namespace)
    durable = server_binary() is not None
    print(f"\ncluster tier: namespace {namespace}, processors in {'DURABLE' if durable else 'LOCAL (no Resonate server image)'} mode")
    kube.run("kubectl", "create", "namespace", namespace)
    kube.kubectl("apply", "-f", str(CLUSTER_CONFIG / "kafka.yaml"))
    mode = [] if durable else ["--set", "resonate.enabled=false", "--set", "resonate.localMode=true"]
    try:
        yield kube, "tombstone", durable, mode
    finally:
        kube.run("helm", "uninstall", "tombstone", "--wait", check=False)
        kube.run("kubectl", "delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def chart():
    return str(CHART)
