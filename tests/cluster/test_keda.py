"""The chart's KEDA ScaledObject on a real cluster: KEDA's operator and metrics API server (built
from KEDA's Go module by `scripts/cluster.sh addons`) read the consumer lag of the processors'
group from the broker, a burst of tombstones scales the processors up on it, and they scale back
down to one once the lag is gone; every tombstone reaches `processed`. The timeline is printed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from devstack.resonate import server_binary
from tests.cluster.kube import CHART, CLUSTER_CONFIG, CLUSTER_STATE, Kube, wait_for
from tests.cluster.test_user_workflow import component_name, processors, read_processed

pytestmark = pytest.mark.cluster

KEDA_VALUES = Path(__file__).with_name("keda-values.yaml")


@pytest.fixture(scope="module")
def scaled_on_lag():
    if not (CLUSTER_STATE / "admin.kubeconfig").exists():
        pytest.skip("no cluster: `make cluster-up` assembles one")
    namespace = f"tombstone-keda-{uuid.uuid4().hex[:6]}"
    kube = Kube(namespace)
    if kube.run("kubectl", "get", "crd", "scaledobjects.keda.sh", check=False).returncode != 0:
        pytest.skip("no KEDA on this cluster (CLUSTER_KEDA=0)")
    durable = server_binary() is not None
    kube.run("kubectl", "create", "namespace", namespace)
    try:
        kube.kubectl("apply", "-f", str(CLUSTER_CONFIG / "kafka.yaml"))
        mode = [] if durable else ["--set", "resonate.enabled=false", "--set", "resonate.localMode=true"]
        # KEDA's operator runs in its own namespace: the broker by its fully qualified name
        broker = ["--set", f"kafka.bootstrapServers=kafka.{namespace}.svc.cluster.local:9092"]
        kube.helm("install", "tombstone", str(CHART), "--values", str(CLUSTER_CONFIG / "values.yaml"),
                  "--values", str(KEDA_VALUES), *broker, *mode, "--wait", "--timeout", "10m")
        yield kube
    finally:
        kube.run("helm", "uninstall", "tombstone", "--wait", check=False)
        kube.run("kubectl", "delete", "namespace", namespace, "--wait=false", check=False)


def test_consumer_lag_scales_the_processors_up_and_back_down(scaled_on_lag):
    kube = scaled_on_lag
    scaled = component_name(kube, "scaledobjects", "processor")
    deployment = component_name(kube, "deployments", "processor")

    def replicas() -> int:
        return kube.json("get", "deployment", deployment)["status"].get("readyReplicas", 0)

    def lag() -> str:
        status = kube.json("get", "scaledobject", scaled).get("status", {})
        hpa = status.get("hpaName")
        if not hpa:
            return "no HPA yet"
        metrics = kube.json("get", "hpa", hpa).get("status", {}).get("currentMetrics") or []
        values = [m["external"]["current"].get("averageValue") for m in metrics if m.get("type") == "External"]
        return f"lag per replica {values}"

    wait_for(lambda: kube.json("get", "scaledobject", scaled).get("status", {}).get("hpaName"), 180,
             "KEDA made the ScaledObject's HPA")
    wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                         for c in kube.json("get", "scaledobject", scaled)["status"].get("conditions", [])),
             180, "the ScaledObject ready (KEDA reads the lag)")
    wait_for(lambda: replicas() == 1, 120, "one processor before the burst")
    cronjob = component_name(kube, "cronjobs", "producer")
    started = time.monotonic()
    kube.kubectl("create", "job", f"{cronjob}-burst", f"--from=cronjob/{cronjob}")
    wait_for(lambda: kube.json("get", "job", f"{cronjob}-burst")["status"].get("succeeded"), 300, "producer Job done")
    ids = [line for line in kube.kubectl("logs", f"job/{cronjob}-burst").splitlines()
           if line and " " not in line and not line.startswith("{")]
    peak = wait_for(lambda: (n := replicas()) > 1 and n, 300, "KEDA scaling the processors up", every=2)
    print(f"\nscaled up to {peak} processors {time.monotonic() - started:.0f}s after the burst began: {lag()}")
    print(kube.kubectl("get", "pods", "-o", "wide"))
    wanted = set(ids)
    wait_for(lambda: wanted <= {r["key"] for r in read_processed(kube)}, 900,
             f"{len(ids)} tombstones processed", every=5)
    done = time.monotonic()
    print(f"all {len(ids)} tombstones processed {done - started:.0f}s after the burst began: {lag()}")
    wait_for(lambda: kube.json("get", "deployment", deployment)["spec"]["replicas"] == 1 and len(processors(kube)) == 1,
             600, "KEDA scaling back to one processor", every=5)
    print(f"back to one processor {time.monotonic() - done:.0f}s after the last tombstone: {lag()}")
    assert len(ids) == 1200
