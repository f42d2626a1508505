"""Scenarios that need more than one node (`make cluster-up` with CLUSTER_NODES >= 3: a control
plane and two workers): processors spread over the workers, `kubectl drain` of the worker with
the most processors under the chart's PodDisruptionBudget, the loss of a worker
(`scripts/cluster.sh node-stop`: its containers and its network gone), and the loss of the
broker's node until it returns. Each produces tombstones first, and every one of them must reach
`processed`; the delays are printed."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.cluster.kube import (
    CLUSTER_CONFIG,
    CLUSTER_STATE,
    REPO,
    Kube,
    Processed,
    await_processed,
    component_name,
    durable,
    install,
    namespace_with_broker,
    pod_ready,
    processors,
    produce,
    read_processed,
    wait_for,
)
from tests.cluster.test_user_workflow import SCENARIO_VALUES

pytestmark = pytest.mark.cluster

NODES_VALUES = Path(__file__).with_name("nodes-values.yaml")
CLUSTER = REPO / "scripts" / "cluster.sh"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def node_names() -> list[str]:
    nodes = CLUSTER_STATE / "nodes"
    return nodes.read_text().split() if nodes.exists() else []


@pytest.fixture(scope="module")
def spread():
    """The chart installed with nodes-values.yaml in a namespace of its own; the broker stand-in
    on the control-plane node too. Yields (Kube, durable)."""
    if len(node_names()) < 3:
        pytest.skip("needs a control plane and two workers (make cluster-up CLUSTER_NODES=3)")
    # placed before it starts: its volume is on the disk of the node it first ran on
    broker = list(yaml.safe_load_all((CLUSTER_CONFIG / "kafka.yaml").read_text()))
    for doc in broker:
        if doc["kind"] == "StatefulSet":
            doc["spec"]["template"]["spec"] |= {
                "nodeSelector": {CONTROL_PLANE: ""},
                "tolerations": [{"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}]}
    with namespace_with_broker("tombstone-nodes", broker) as kube:
        try:
            took = install(kube, SCENARIO_VALUES, NODES_VALUES)
            print(f"\nnodes scenarios: namespace {kube.namespace}, {'DURABLE' if durable() else 'LOCAL'} mode, "
                  f"helm install --wait: {took:.0f}s")
            yield kube, durable()
        finally:
            for node in node_names():
                kube.run("kubectl", "uncordon", node, check=False)


def placement(kube: Kube) -> Counter:
    return Counter(p["spec"].get("nodeName") for p in processors(kube) if pod_ready(p))


def workers(kube: Kube) -> list[str]:
    return [n["metadata"]["name"] for n in kube.json("get", "nodes")["items"]
            if CONTROL_PLANE not in n["metadata"]["labels"]]


def show(kube: Kube, title: str) -> None:
    print(f"--- {title}")
    print(kube.kubectl("get", "nodes", "-o", "wide"))
    print(kube.kubectl("get", "pods", "-o", "wide"))




def report(processed: Processed, ids: list[str]) -> float:
    print(f"processed: {processed.tombstones} of {len(ids)} tombstones, {processed.duplicates} duplicate records")
    return processed.at


def node_ready(kube: Kube, node: str) -> bool:
    conditions = kube.json("get", "node", node)["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def busy_worker(kube: Kube) -> str:
    placed = placement(kube)
    return max(workers(kube), key=lambda n: placed.get(n, 0))


def test_processors_spread_over_the_workers(spread):
    kube, _ = spread
    placed = wait_for(lambda: (p := placement(kube)) and sum(p.values()) == 3 and p, 120, "three processors ready")
    show(kube, "after install (topology spread: DoNotSchedule over the hostname)")
    print(f"processors per node: {dict(placed)}")
    assert set(placed) == set(workers(kube)), placed
    assert max(placed.values()) - min(placed.values()) <= 1


def test_drain_waits_for_the_budget_and_loses_nothing(spread):
    kube, _ = spread
    ids = produce(kube, "drain")
    node = busy_worker(kube)
    on_node = placement(kube)[node]
    budget = kube.json("get", "pdb", component_name(kube, "pdb", "processor"))["spec"]
    lowest = [3]
    done = threading.Event()

    def watch_ready():  # the fewest ready processors at any moment of the drain
        while not done.is_set():
            lowest[0] = min(lowest[0], sum(placement(kube).values()))
            done.wait(0.5)

    watcher = threading.Thread(target=watch_ready, daemon=True)
    watcher.start()
    started = time.monotonic()
    drain = kube.run("kubectl", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                     "--timeout=300s", timeout=330)
    drained = time.monotonic()
    done.set()
    watcher.join()
    waits = sum("disruption budget" in line for line in (drain.stdout + drain.stderr).splitlines())
    show(kube, f"after kubectl drain {node}")
    print(f"drain of {node} ({on_node} processors, budget {budget}): {drained - started:.0f}s, "
          f"{waits} evictions refused by the budget and retried, fewest ready processors: {lowest[0]}")
    assert lowest[0] >= 3 - budget["maxUnavailable"], "the drain took the group below its budget"
    if on_node > 1:
        assert waits > 0, "the second eviction waited for the budget"
    assert node not in placement(kube)
    finished = report(await_processed(kube, ids, 600, f"{len(ids)} tombstones processed after the drain"), ids)
    print(f"resume: every tombstone processed {finished - drained:.0f}s after the drain returned")
    kube.kubectl("uncordon", node)


def test_losing_a_worker_loses_nothing(spread):
    kube, _ = spread
    # back to one processor per worker at least, after the drain: restart spreads them again
    deployment = component_name(kube, "deployments", "processor")
    kube.kubectl("rollout", "restart", f"deployment/{deployment}")
    kube.kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=5m", timeout=330)
    wait_for(lambda: len(placement(kube)) == 2, 120, "processors on both workers")
    ids = produce(kube, "loss")
    node = busy_worker(kube)
    lost = placement(kube)[node]
    stopped = time.monotonic()
    subprocess.run([str(CLUSTER), "node-stop", node], check=True, timeout=120)
    try:
        wait_for(lambda: not node_ready(kube, node), 180, f"{node} NotReady")
        not_ready = time.monotonic()
        wait_for(lambda: sum(placement(kube).values()) == 3 and node not in placement(kube), 300,
                 "three processors ready again, none on the lost node")
        replaced = time.monotonic()
        show(kube, f"after {node} was stopped")
        finished = report(await_processed(kube, ids, 900, f"{len(ids)} tombstones processed after losing {node}"), ids)
        print(f"loss of {node} ({lost} processors): NotReady after {not_ready - stopped:.0f}s, "
              f"replacements ready after {replaced - stopped:.0f}s, every tombstone processed after {finished - stopped:.0f}s")
    finally:
        subprocess.run([str(CLUSTER), "node-start", node], check=False, timeout=300)
    wait_for(lambda: node_ready(kube, node), 180, f"{node} Ready again")


def test_losing_the_brokers_node_stalls_the_pipeline_and_loses_nothing(spread):
    """The broker's volume is on its node's disk (the local-path provisioner pins it there, as on
    kind), so the broker cannot move: while its node is away nothing is consumed or published
    (the server and Jaeger, on the same node here, are away too); when the node returns, the
    broker starts again on the same volume, with its topics and offsets, and every tombstone is
    processed."""
    kube, _ = spread
    claim = kube.json("get", "pvc", "data-kafka-0")["spec"]["volumeName"]
    node = kube.json("get", "pod", "kafka-0")["spec"]["nodeName"]
    pinned = kube.json("get", "pv", claim)["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["values"] for t in pinned] == [[node]], pinned
    ids = produce(kube, "broker-node")
    before = {r["key"] for r in read_processed(kube)} & set(ids)
    stopped = time.monotonic()
    subprocess.run([str(CLUSTER), "node-stop", node], check=True, timeout=120)
    try:
        wait_for(lambda: not node_ready(kube, node), 180, f"{node} NotReady")
        not_ready = time.monotonic()
        show(kube, f"while {node}, the broker's node, is stopped")
    finally:
        subprocess.run([str(CLUSTER), "node-start", node], check=True, timeout=300)
    started = time.monotonic()
    wait_for(lambda: pod_ready(pod := kube.json("get", "pod", "kafka-0")) and pod["spec"]["nodeName"] == node,
             300, "the broker ready again on its node")
    back = time.monotonic()
    finished = report(await_processed(kube, ids, 900, f"{len(ids)} tombstones processed after {node} returned"), ids)
    assert kube.json("get", "pvc", "data-kafka-0")["spec"]["volumeName"] == claim
    print(f"loss of the broker's node {node}: {len(before)} of {len(ids)} processed before it stopped, "
          f"NotReady after {not_ready - stopped:.0f}s, away {started - stopped:.0f}s; the broker ready "
          f"{back - started:.0f}s after the node returned, every tombstone processed {finished - started:.0f}s after")
