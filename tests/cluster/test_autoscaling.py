"""The chart's HorizontalPodAutoscaler on a real cluster: metrics-server serves the resource
metrics API through the API server's aggregation layer (`kubectl top` works), a burst of
tombstones scales the processors up, and they scale back down to one when it is done; every
tombstone reaches `processed`. The timeline is printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.kube import (
    CLUSTER_STATE,
    component_name,
    install,
    namespace_with_broker,
    processors,
    produce,
    read_processed,
    wait_for,
)

pytestmark = pytest.mark.cluster

HPA_VALUES = Path(__file__).with_name("hpa-values.yaml")


@pytest.fixture(scope="module")
def autoscaled():
    with namespace_with_broker("tombstone-hpa") as kube:
        install(kube, HPA_VALUES)
        yield kube


def test_kubectl_top_reads_the_metrics_api(autoscaled):
    kube = autoscaled
    # (a node started a moment ago has no sample yet: <unknown> until metrics-server scrapes it)
    nodes = wait_for(lambda: (out := kube.kubectl("top", "nodes").strip()) and "<unknown>" not in out and out,
                     120, "kubectl top nodes, every node measured")
    pods = wait_for(lambda: (out := kube.kubectl("top", "pods")) and "processor" in out and out, 120,
                    "kubectl top pods shows the processor")
    print(f"\n{nodes}\n{pods}")
    assert len(nodes.splitlines()) == 1 + len((CLUSTER_STATE / "nodes").read_text().split())


def test_a_burst_scales_the_processors_up_and_back_down(autoscaled):
    kube = autoscaled
    hpa = component_name(kube, "hpa", "processor")
    deployment = component_name(kube, "deployments", "processor")

    def replicas() -> int:
        return kube.json("get", "deployment", deployment)["status"].get("readyReplicas", 0)

    def hpa_status() -> str:
        status = kube.json("get", "hpa", hpa)["status"]
        cpu = next((m["resource"]["current"].get("averageUtilization") for m in status.get("currentMetrics") or []
                    if m.get("type") == "Resource"), None)
        return f"replicas {status.get('currentReplicas')}->{status.get('desiredReplicas')}, cpu {cpu}%"

    wait_for(lambda: replicas() == 1, 120, "one processor before the burst")
    started = time.monotonic()
    ids = produce(kube, "burst", deadline=300)
    peak = wait_for(lambda: (n := replicas()) > 1 and n, 300, "the HPA scaling the processors up", every=2)
    up = time.monotonic()
    print(f"\nscaled up to {peak} processors {up - started:.0f}s after the burst began: {hpa_status()}")
    print(kube.kubectl("get", "pods", "-o", "wide"))
    wanted = set(ids)
    wait_for(lambda: wanted <= {r["key"] for r in read_processed(kube)}, 900,
             f"{len(ids)} tombstones processed", every=5)
    done = time.monotonic()
    print(f"all {len(ids)} tombstones processed {done - started:.0f}s after the burst began: {hpa_status()}")
    wait_for(lambda: kube.json("get", "deployment", deployment)["spec"]["replicas"] == 1 and len(processors(kube)) == 1,
             600, "the HPA scaling back to one processor", every=5)
    print(f"back to one processor {time.monotonic() - done:.0f}s after the last tombstone: {hpa_status()}")
