"""The cluster tier: the chart installed on the real single-node cluster of `make cluster-up`."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.cluster.kube import CLUSTER_CONFIG, CLUSTER_STATE, CHART, SERVER_IMAGE, Kube, node_images

pytestmark = pytest.mark.cluster


def _unavailable(reason: str):
    # In CI a cluster that did not come up is a failed preparation, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: the cluster tier must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """The chart installed (durable when the node holds a Resonate server image), then uninstalled
    by the last test. Yields (Kube, release name, durable)."""
    if not (CLUSTER_STATE / "admin.kubeconfig").exists():
        _unavailable("no cluster: `make cluster-up` assembles one")
    namespace = f"tombstone-{uuid.uuid4().hex[:6]}"
    kube = Kube(namespace)
    durable = SERVER_IMAGE in node_images(kube)
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
