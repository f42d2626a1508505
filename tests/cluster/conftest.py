"""The cluster tier: the chart installed on the real cluster of `make cluster-up`."""

from __future__ import annotations

import pytest

from tests.cluster.kube import CHART, LOCAL_MODE, RELEASE, durable, namespace_with_broker

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="session")
def release():
    """A namespace with the broker stand-in, where the first test installs the chart and the last
    uninstalls it. Durable when a Resonate server binary exists (`scripts/cluster.sh images` then
    built the server image from it), else in local mode. Yields (Kube, release name, durable,
    the helm flags for the mode)."""
    with namespace_with_broker("tombstone") as kube:
        print(f"\ncluster tier: namespace {kube.namespace}, processors in "
              f"{'DURABLE' if durable() else 'LOCAL (no Resonate server image)'} mode")
        yield kube, RELEASE, durable(), ([] if durable() else LOCAL_MODE)


@pytest.fixture(scope="session")
def chart():
    return str(CHART)
