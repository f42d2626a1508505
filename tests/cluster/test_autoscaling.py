"""The chart's HorizontalPodAutoscaler on a real cluster: metrics-server serves the resource
metrics API through the API server's aggregation layer (`kubectl top` works), a burst of
tombstones scales the processors up, and they scale back down to one when it is done; every
tombstone reaches `processed`. The timeline is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.kube import (
    CLUSTER_STATE,
    component_name,
    install,
    namespace_with_broker,
    scale_through_a_burst,
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

    def hpa_status() -> str:
        status = kube.json("get", "hpa", hpa)["status"]
        cpu = next((m["resource"]["current"].get("averageUtilization") for m in status.get("currentMetrics") or []
                    if m.get("type") == "Resource"), None)
        return f"replicas {status.get('currentReplicas')}->{status.get('desiredReplicas')}, cpu {cpu}%"

    scale_through_a_burst(kube, "the HPA", hpa_status)
