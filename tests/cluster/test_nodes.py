"""Scenarios that need more than one node (`make cluster-up` with CLUSTER_NODES >= 3: a control
plane and two workers), with three brokers, one on each node, and the topics replicated three
times with min.insync.replicas 2 (as the chart's `redpanda.replicas: 3` runs them): processors
spread over the workers, `kubectl drain` of the worker with the most processors under the chart's
PodDisruptionBudget (its broker evicted too), the loss of a worker with processors and a broker
on it (`scripts/cluster.sh node-stop`: its containers and its network gone), and the loss of the
control plane's node (the server, Jaeger and a broker) until it returns. Each produces tombstones
first, and every one of them must reach `processed`; the delays are printed."""

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
    describe_topics,
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
BROKERS = 3
BROKER = "app.kubernetes.io/name=kafka"


def node_names() -> list[str]:
    nodes = CLUSTER_STATE / "nodes"
    return nodes.read_text().split() if nodes.exists() else []


def brokers_on_every_node(count: int) -> list[dict]:
    """k8s/cluster/kafka.yaml with ``count`` brokers, at most one per node, the control plane's
    included. Placed before they start: a broker's volume is on the disk of the node it first
    ran on."""
    documents = list(yaml.safe_load_all((CLUSTER_CONFIG / "kafka.yaml").read_text()))
    for doc in documents:
        if doc["kind"] == "StatefulSet":
            doc["spec"]["replicas"] = count
            pod = doc["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            (replicas,) = [e for e in container["env"] if e["name"] == "KAFKA_REPLICAS"]
            replicas["value"] = str(count)
            pod["tolerations"] = [{"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}]
            pod["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kafka"}},
                 "topologyKey": "kubernetes.io/hostname"}]}}
    return documents


@pytest.fixture(scope="module")
def spread():
    """The chart installed with nodes-values.yaml in a namespace of its own, beside three brokers,
    one on each node. Yields (Kube, durable)."""
    if len(node_names()) < 3:
        pytest.skip("needs a control plane and two workers (make cluster-up CLUSTER_NODES=3)")
    with namespace_with_broker("tombstone-nodes", brokers_on_every_node(BROKERS)) as kube:
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


def brokers(kube: Kube) -> dict[str, str | None]:
    """Each ready broker pod and its node."""
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in kube.items("pods", BROKER)
            if pod_ready(p) and not p["metadata"].get("deletionTimestamp")}


def partitions(topics: dict) -> str:
    """Leaders and in-sync replicas of the tombstones topic (from describe_topics), one partition a line."""
    (tombstones, *_) = topics.values()
    return "\n".join(f"  tombstones[{p}]: leader {m['leader']}, replicas {m['replicas']}, in sync {m['isr']}"
                     for p, m in tombstones.items())


def ordinal(broker: str) -> int:
    """A broker pod's node.id (kafka-start.sh: the pod's ordinal)."""
    return int(broker.rsplit("-", 1)[1])


def leaders(topics: dict) -> Counter:
    """How many partitions of the pipeline's topics (from describe_topics) each broker (node.id) leads."""
    return Counter(m["leader"] for topic in topics.values() for m in topic.values())


def all_brokers_back(kube: Kube) -> None:
    """Every broker ready, every partition in sync on all of them, and each broker leading some
    (kafka-start.sh: a returned broker takes back its preferred partitions within seconds)."""
    wait_for(lambda: len(brokers(kube)) == BROKERS, 300, f"{BROKERS} brokers ready")
    wait_for(lambda: all(len(m["isr"]) == BROKERS for t in describe_topics(kube).values() for m in t.values()),
             300, "every partition back in sync on all the brokers", every=3)
    wait_for(lambda: len(leaders(describe_topics(kube))) == BROKERS, 120, "every broker leading partitions again", every=3)


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
    all_brokers_back(kube)
    on = brokers(kube)
    print(f"brokers: {on}\n{partitions(describe_topics(kube))}")
    assert len(set(on.values())) == BROKERS, "one broker per node"
    assert set(placed) == set(workers(kube)), placed
    assert max(placed.values()) - min(placed.values()) <= 1


def test_drain_waits_for_the_budget_and_loses_nothing(spread):
    kube, _ = spread
    all_brokers_back(kube)
    ids = produce(kube, "drain")
    node = busy_worker(kube)
    on_node = placement(kube)[node]
    (evicted,) = [b for b, n in brokers(kube).items() if n == node]
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
    assert evicted not in brokers(kube), f"{evicted} waits for its node (its volume is there)"
    finished = report(await_processed(kube, ids, 600, f"{len(ids)} tombstones processed after the drain"), ids)
    print(f"resume: every tombstone processed {finished - drained:.0f}s after the drain returned, "
          f"with {evicted} away:\n{partitions(describe_topics(kube))}")
    kube.kubectl("uncordon", node)
    all_brokers_back(kube)


def test_losing_a_worker_with_processors_and_a_broker_loses_nothing(spread):
    """The worker goes with its processors and its broker, without a shutdown. The partitions it
    led get new leaders on the other two brokers, which keep acknowledging writes (two in sync =
    min.insync.replicas): tombstones produced while it is away are processed too."""
    kube, _ = spread
    # back to one processor per worker at least, after the drain: restart spreads them again
    deployment = component_name(kube, "deployments", "processor")
    kube.kubectl("rollout", "restart", f"deployment/{deployment}")
    kube.kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=5m", timeout=330)
    wait_for(lambda: len(placement(kube)) == 2, 120, "processors on both workers")
    all_brokers_back(kube)
    ids = produce(kube, "loss")
    node = busy_worker(kube)
    lost = placement(kube)[node]
    (broker,) = [b for b, n in brokers(kube).items() if n == node]
    topics = describe_topics(kube)
    led, leading = partitions(topics), leaders(topics)[ordinal(broker)]
    assert leading, f"{broker} leads partitions before its node goes"
    others = {ordinal(b) for b in brokers(kube) if b != broker}
    stopped = time.monotonic()
    subprocess.run([str(CLUSTER), "node-stop", node], check=True, timeout=120)
    try:
        wait_for(lambda: not node_ready(kube, node), 180, f"{node} NotReady")
        not_ready = time.monotonic()
        # (read in a processor: once the node is NotReady, its own are no longer taken for ready)
        wait_for(lambda: set(leaders(describe_topics(kube))) <= others, 120, f"{broker}'s partitions led by the others", every=3)
        # written while the broker is away: acknowledged by the two left
        during = produce(kube, "loss-during", deadline=300)
        wait_for(lambda: sum(placement(kube).values()) == 3 and node not in placement(kube), 300,
                 "three processors ready again, none on the lost node")
        replaced = time.monotonic()
        show(kube, f"after {node} was stopped")
        processed = await_processed(kube, ids + during, 900,
                                    f"{len(ids) + len(during)} tombstones processed after losing {node}")
        finished = report(processed, ids + during)
        print(f"partitions before, with {broker} on {node}:\n{led}\nand with it lost:\n{partitions(describe_topics(kube))}")
        print(f"loss of {node} ({lost} processors, broker {broker} leading {leading} partitions): "
              f"NotReady after {not_ready - stopped:.0f}s, "
              f"{len(during)} more tombstones produced while it was away, replacements ready after "
              f"{replaced - stopped:.0f}s, every tombstone processed after {finished - stopped:.0f}s")
    finally:
        subprocess.run([str(CLUSTER), "node-start", node], check=False, timeout=300)
    wait_for(lambda: node_ready(kube, node), 180, f"{node} Ready again")
    all_brokers_back(kube)


def test_losing_the_control_planes_node_loses_nothing(spread):
    """The control plane's node holds the Resonate server, Jaeger and one broker, whose volumes
    are on its disk (the local-path provisioner pins them there, as on kind), so none of them can
    move: while the node is away the two other brokers lead every partition, and the processors
    wait for the server (in durable mode); when it returns, the server and the broker start again
    on the same volumes and every tombstone is processed."""
    kube, _ = spread
    all_brokers_back(kube)
    node = next(n["metadata"]["name"] for n in kube.json("get", "nodes")["items"]
                if CONTROL_PLANE in n["metadata"]["labels"])
    (broker,) = [b for b, n in brokers(kube).items() if n == node]
    others = {ordinal(b) for b in brokers(kube) if b != broker}
    claim = kube.json("get", "pvc", f"data-{broker}")["spec"]["volumeName"]
    pinned = kube.json("get", "pv", claim)["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["values"] for t in pinned] == [[node]], pinned
    ids = produce(kube, "control-plane")
    before = {r["key"] for r in read_processed(kube)} & set(ids)
    stopped = time.monotonic()
    subprocess.run([str(CLUSTER), "node-stop", node], check=True, timeout=120)
    try:
        wait_for(lambda: not node_ready(kube, node), 180, f"{node} NotReady")
        not_ready = time.monotonic()
        show(kube, f"while {node}, the control plane's node, is stopped")
        wait_for(lambda: set(leaders(describe_topics(kube))) <= others, 120, f"every partition led by {others}, not {broker}", every=3)
        print(f"partitions with {broker} away:\n{partitions(describe_topics(kube))}")
    finally:
        subprocess.run([str(CLUSTER), "node-start", node], check=True, timeout=300)
    started = time.monotonic()
    wait_for(lambda: brokers(kube).get(broker) == node, 300, f"{broker} ready again on its node")
    back = time.monotonic()
    finished = report(await_processed(kube, ids, 900, f"{len(ids)} tombstones processed after {node} returned"), ids)
    assert kube.json("get", "pvc", f"data-{broker}")["spec"]["volumeName"] == claim
    print(f"loss of the control plane's node {node} (server, Jaeger, {broker}): {len(before)} of {len(ids)} "
          f"processed before it stopped, NotReady after {not_ready - stopped:.0f}s, away {started - stopped:.0f}s; "
          f"{broker} ready {back - started:.0f}s after the node returned, every tombstone processed "
          f"{finished - started:.0f}s after")
