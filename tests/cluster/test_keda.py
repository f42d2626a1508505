"""The chart's KEDA ScaledObject on a real cluster (`CLUSTER_KEDA=1 make cluster-e2e`): KEDA's
operator and metrics API server, built from KEDA's Go module by `scripts/cluster.sh addons`, read
the consumer lag of the processors' group from the broker; a burst of tombstones scales the
processors up on it, and they scale back down to one once the lag is gone; every tombstone
reaches `processed`. The timeline is printed. Only with KEDA (marker `keda`): `make cluster-e2e`
leaves it out unless CLUSTER_KEDA=1, and CI leaves it out (KEDA's build takes about ten minutes
cold on two cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.kube import (
    Kube,
    component_name,
    install,
    namespace_with_broker,
    require_cluster,
    scale_through_a_burst,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.keda]

KEDA_VALUES = Path(__file__).with_name("keda-values.yaml")


@pytest.fixture(scope="module")
def scaled_on_lag():
    require_cluster()
    if Kube("default").run("kubectl", "get", "crd", "scaledobjects.keda.sh", check=False).returncode != 0:
        pytest.skip("no KEDA on this cluster: CLUSTER_KEDA=1 make cluster-up installs it")
    with namespace_with_broker("tombstone-keda") as kube:
        # KEDA's operator runs in its own namespace: the broker by its fully qualified name
        install(kube, KEDA_VALUES, extra=("--set", f"kafka.bootstrapServers=kafka.{kube.namespace}.svc.cluster.local:9092"))
        yield kube


def test_consumer_lag_scales_the_processors_up_and_back_down(scaled_on_lag):
    kube = scaled_on_lag
    scaled = component_name(kube, "scaledobjects", "processor")

    def ready() -> bool:
        conditions = kube.json("get", "scaledobject", scaled).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def lag() -> str:
        hpa = kube.json("get", "scaledobject", scaled)["status"]["hpaName"]
        metrics = kube.json("get", "hpa", hpa).get("status", {}).get("currentMetrics") or []
        return f"lag per replica {[m['external']['current'].get('averageValue') for m in metrics if m.get('type') == 'External']}"

    wait_for(ready, 180, "the ScaledObject ready (KEDA reads the lag)")
    scale_through_a_burst(kube, "KEDA", lag)
