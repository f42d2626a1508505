"""What a user does with the chart, on a real cluster, step by step (each step a test, in order):
install, check the pods' security and that the NetworkPolicies hold, produce from the CronJob,
scale over the nodes, kill a processor, restart them all, read the traces, uninstall. The steps
share one release (conftest.release)."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.cluster.kube import (
    CLUSTER_CONFIG,
    PRODUCE_TOMBSTONES,
    admin,
    Kube,
    component_name,
    delete_ledger,
    has_span,
    jaeger_trace,
    PROCESSOR_PORT,
    metrics_of,
    pod_ready,
    probe_connections,
    processors,
    produce,
    read_processed,
    wait_for,
)
from tests.support.faults import Kill, judge

pytestmark = pytest.mark.cluster

SCENARIO_VALUES = Path(__file__).with_name("scenario-values.yaml")
TOMBSTONES = yaml.safe_load(SCENARIO_VALUES.read_text())["producer"]["count"]


@dataclass
class Scenario:
    ids: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    processed: list[dict] = field(default_factory=list)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario()






def test_helm_install_brings_every_pod_up_and_helm_test_passes(release, chart):
    kube, name, durable, mode = release
    started = time.monotonic()
    kube.helm("install", name, chart, "--values", str(CLUSTER_CONFIG / "values.yaml"),
              "--values", str(SCENARIO_VALUES), *mode, "--wait", "--timeout", "10m")
    print(f"helm install --wait: {time.monotonic() - started:.0f}s")
    pods = kube.items("pods", f"app.kubernetes.io/instance={name}")
    running = [p for p in pods if p["status"]["phase"] != "Succeeded"]
    assert running and all(pod_ready(p) for p in running), [(p["metadata"]["name"], p["status"]["phase"]) for p in running]
    expected = {"processor", "jaeger"} | ({"resonate"} if durable else set())
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in running} == expected
    # The topic-init hook Job ran to completion (helm waited for it; on success it deletes itself).
    status = json.loads(kube.helm("status", name, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    hooks = [h for h in status.get("hooks", []) if h["kind"] == "Job"]
    assert [h["last_run"]["phase"] for h in hooks] == ["Succeeded"], hooks
    kube.helm("test", name, "--logs", "--timeout", "5m")


def test_pods_run_under_the_charts_security_contexts(release):
    """The kernel enforces what the chart asks for: non-root, read-only root, no capabilities,
    the runtime's seccomp profile."""
    kube, name, _, _ = release
    for pod in kube.items("pods", f"app.kubernetes.io/instance={name}"):
        if pod["status"]["phase"] != "Running":
            continue
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
    processor = processors(kube)[0]["metadata"]["name"]
    status = kube.kubectl("exec", processor, "-c", "processor", "--", "cat", "/proc/self/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == "10001"
    assert int(fields["CapEff"], 16) == 0, "no effective capabilities"
    assert fields["Seccomp"].strip() == "2", "a seccomp filter is applied"
    assert fields["NoNewPrivs"].strip() == "1"
    write = kube.run("kubectl", "exec", processor, "-c", "processor", "--", "touch", "/written", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_network_policies_admit_the_pipeline_and_refuse_other_namespaces(release):
    """With networkPolicy.enabled (k8s/cluster/values.yaml) and an enforcer on every node: a pod
    with the processor's labels reaches the broker and the Resonate server from the release's
    namespace, and the same pod in another namespace is dropped by both; the processor's HTTP
    port (health, metrics) is open to every namespace, its other ports to none."""
    kube, name, durable, _ = release
    processor = next(p for p in processors(kube) if pod_ready(p))
    labels = {k: v for k, v in processor["metadata"]["labels"].items()
              if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")}
    image = next(c["image"] for c in processor["spec"]["containers"] if c["name"] == "processor")
    kafka = kube.json("get", "service", "kafka")["spec"]["clusterIP"]
    api = Kube("default").json("get", "service", "kubernetes")["spec"]["clusterIP"]
    targets = [("broker", kafka, 9092), ("processor-http", processor["status"]["podIP"], PROCESSOR_PORT),
               ("processor-other-port", processor["status"]["podIP"], 9999), ("api", api, 443)]
    expected_inside = {"broker": "open", "processor-http": "open", "processor-other-port": "dropped", "api": "open"}
    expected_outside = {"broker": "dropped", "processor-http": "open", "processor-other-port": "dropped", "api": "open"}
    if durable:
        (server,) = kube.items("services", "app.kubernetes.io/component=resonate")
        ports = {p["name"]: p["port"] for p in server["spec"]["ports"]}
        ip = server["spec"]["clusterIP"]
        targets += [("server", ip, ports["http"]), ("server-metrics", ip, ports["metrics"])]
        expected_inside |= {"server": "open", "server-metrics": "open"}
        expected_outside |= {"server": "dropped", "server-metrics": "open"}

    inside = probe_connections(kube, "probe-inside", labels, targets, image)
    other = Kube(f"{kube.namespace}-other")
    other.run("kubectl", "create", "namespace", other.namespace)
    try:
        outside = probe_connections(other, "probe-outside", labels, targets, image)
    finally:
        other.run("kubectl", "delete", "namespace", other.namespace, "--wait=false", check=False)
    print(f"from {kube.namespace} (processor's labels): {inside}")
    print(f"from {other.namespace} (same labels):  {outside}")
    assert inside == expected_inside
    assert outside == expected_outside


def test_scaling_to_three_processors_while_work_is_in_flight(release, scenario):
    kube, name, _, _ = release
    scenario.ids = produce(kube, "scenario")
    assert len(scenario.ids) == TOMBSTONES, scenario.ids[:5]

    (first,) = [p["metadata"]["name"] for p in processors(kube)]
    wait_for(lambda: (metrics_of(kube, first, "tombstones_in_flight") or 0) > 0, 60, "work in flight on the first processor")
    deployment = component_name(kube, "deployments", "processor")
    kube.kubectl("scale", f"deployment/{deployment}", "--replicas=3")

    def all_six_shared_by_three():
        # A cooperative rebalance moves partitions in two steps (revoke, then assign): wait for
        # the end of it, not a snapshot in the middle.
        pods = [p for p in processors(kube) if pod_ready(p)]
        if len(pods) != 3:
            return None
        assigned = {p["metadata"]["name"]: metrics_of(kube, p["metadata"]["name"], "tombstones_partitions_assigned") for p in pods}
        return assigned if all((n or 0) > 0 for n in assigned.values()) and sum(assigned.values()) == 6 else None

    assigned = wait_for(all_six_shared_by_three, 180, "three processors sharing the 6 partitions")
    print(f"partitions assigned after scaling: {assigned}")
    print(kube.kubectl("get", "nodes", "-o", "wide"))
    print(kube.kubectl("get", "pods", "-o", "wide"))
    # The chart spreads processors over nodes (topologySpreadConstraints on the hostname): with
    # two or more nodes that take workloads, the three do not share one.
    schedulable = [n["metadata"]["name"] for n in kube.json("get", "nodes")["items"]
                   if not any(t["effect"] == "NoSchedule" for t in n["spec"].get("taints", []))]
    placed = {p["spec"]["nodeName"] for p in processors(kube)}
    if len(schedulable) > 1:
        assert len(placed) > 1, f"three processors on {placed}, nodes that take workloads: {schedulable}"


def test_a_killed_processor_and_a_rolling_restart_lose_nothing(release, scenario):
    kube, name, durable, _ = release
    assert scenario.ids, "the scaling step produced the tombstones"
    # A second wave, produced now: the kill must find work in flight, and the scaling step's wave
    # may be done by this time (its pace depends on how long the rebalance took).
    scenario.ids += produce(kube, "kill")
    busy = wait_for(
        lambda: next((p["metadata"]["name"] for p in processors(kube)
                      if pod_ready(p) and (metrics_of(kube, p["metadata"]["name"], "tombstones_in_flight") or 0) > 0), None),
        60, "a processor with work in flight",
    )
    in_flight = metrics_of(kube, busy, "tombstones_in_flight")
    scenario.kills.append(Kill(at=time.time(), pid=busy, how="SIGKILL"))
    kube.kubectl("delete", "pod", busy, "--grace-period=0", "--force")
    print(f"deleted {busy} (--grace-period=0 --force) with {in_flight:.0f} workflows in flight")

    deployment = component_name(kube, "deployments", "processor")
    before = {p["metadata"]["name"] for p in processors(kube)}
    kube.kubectl("rollout", "restart", f"deployment/{deployment}")
    kube.kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=5m", timeout=330)
    scenario.kills += [Kill(at=at, pid=pod, how="SIGTERM") for pod, at in stop_times(kube, before - {busy}).items()]

    wanted = set(scenario.ids)
    def everything_processed():
        records = read_processed(kube)
        return records if wanted <= {r["key"] for r in records} else None

    scenario.processed = wait_for(everything_processed, 600, f"a processed record for each of {len(wanted)} tombstones", every=5)
    counts = Counter(r["key"] for r in scenario.processed if r["key"] in wanted)
    duplicates = sum(counts.values()) - len(counts)
    print(f"processed: {len(counts)} of {len(wanted)} tombstones, {duplicates} duplicate records")
    assert set(counts) == wanted


def stop_times(kube: Kube, pods: set[str]) -> dict[str, float]:
    """When the kubelet began stopping each pod (its Killing event), epoch seconds."""
    from datetime import datetime

    events = kube.json("get", "events", "--field-selector", "reason=Killing")["items"]
    times: dict[str, float] = {}
    for event in events:
        pod = event["involvedObject"]["name"]
        stamp = event.get("eventTime") or event.get("firstTimestamp")
        if pod in pods and stamp:
            times[pod] = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return times



def test_one_trace_per_tombstone_and_no_finished_batch_runs_twice(release, scenario):
    kube, name, durable, _ = release
    assert scenario.processed, "the recovery step read the processed records"
    jaeger = component_name(kube, "services", "jaeger")
    wanted = set(scenario.ids)  # (the helm test's own tombstones are on the topic too)
    ours = [r for r in scenario.processed if r["key"] in wanted]
    first = {}
    for record in ours:
        first.setdefault(record["key"], record)
    assert len(first) == len(wanted)

    # Every tombstone's trace reaches Jaeger, from the producer's span on; the processors export
    # theirs in batches, so a complete trace may lag its `processed` record by a few seconds.
    # (fetched side by side: one kubectl call each, some hundreds of them)
    def trace_of(tombstone_id: str) -> dict:
        trace_id = first[tombstone_id]["traceparent"].split("-")[1]
        return wait_for(lambda: has_span(jaeger_trace(kube, jaeger, trace_id), "send tombstones"),
                        60, f"trace of {tombstone_id}", every=0.5)
    with ThreadPoolExecutor(max_workers=4) as pool:
        traces = dict(zip(first, pool.map(trace_of, first)))
    def incomplete():
        for tombstone_id in [t for t, trace in traces.items() if not has_span(trace, "send processed")]:
            traces[tombstone_id] = jaeger_trace(kube, jaeger, first[tombstone_id]["traceparent"].split("-")[1])
        return [t for t, trace in traces.items() if not has_span(trace, "send processed")]
    try:
        wait_for(lambda: not incomplete(), 30, "every trace complete")
    except AssertionError:
        pass  # judged below: only spans still in a force-deleted pod's export buffer may be missing
    missing = incomplete()
    killed = {kill.pid for kill in scenario.kills if kill.how == "SIGKILL"}
    print(f"traces: {len(traces)} for {len(wanted)} tombstones; {len(missing)} without their last span, "
          "lost in the export buffer of the force-deleted pod" if missing else f"traces: {len(traces)}, all complete")
    assert all(first[t]["value"]["processor"] in killed for t in missing), [first[t]["value"]["processor"] for t in missing]

    ledger = delete_ledger(traces)
    two_pods = sum(len({e["pid"] for e in ledger if e["id"] == t}) > 1 for t in traces)
    verdict = judge(scenario.ids, [(r["key"], json.dumps(r["value"]).encode()) for r in ours], ledger, scenario.kills)
    for line in verdict.lines(scenario.kills):
        print(line)
    print(f"traces with spans from two pods: {two_pods}")
    killed_at = {kill.pid: (kill.how, kill.at) for kill in scenario.kills}
    for tombstone_id, batch in verdict.unexplained_redos:
        runs = sorted((e["at"], e["pid"]) for e in ledger if e["id"] == tombstone_id and e["batch"] == batch and e["ok"])
        print(f"  batch {batch} of {tombstone_id} ran {len(runs)} times: " + "; ".join(
            f"{pod} at {at:.2f}" + (f" ({killed_at[pod][0]} at {killed_at[pod][1]:.2f})" if pod in killed_at else "")
            for at, pod in runs))
    assert not verdict.lost
    if durable:
        assert verdict.unexplained_redos == [], "only a step in flight at a kill may run again"
        assert two_pods > 0, "a resumed workflow's trace holds spans from two pods"



def test_record_admin_replays_a_dead_letter_and_cancels_a_sleeping_workflow(release):
    """Day two in a processor pod (docs/kubernetes.md): a poison tombstone's dead letter replayed
    runs again (its generation 1 is dead-lettered in turn); a long one is cancelled mid-sleep."""
    kube, _, durable, _ = release
    tag = str(int(time.time()))
    poison, long = f"admin-{tag}-poison", f"admin-{tag}-long"
    tombstones = [{"id": poison, "batches": 2, "error_rate": 1.0}, {"id": long, "batches": 1000}]
    kube.kubectl("exec", processors(kube)[0]["metadata"]["name"], "-c", "processor", "--",
                 "python", "-c", PRODUCE_TOMBSTONES, json.dumps(tombstones))

    def generations() -> list[int]:
        return [json.loads(line)["generation"] for line in admin(kube, "dlq", "list", "--prefix", poison, "--json").splitlines()]

    wait_for(lambda: generations() == [0], 180, "the poison tombstone dead-lettered", every=3)
    replayed = admin(kube, "dlq", "replay", "--prefix", poison)
    print(replayed)
    assert "replayed 1 tombstones" in replayed
    wait_for(lambda: generations() == [0, 1], 180, "its replay ran, and was dead-lettered as generation 1", every=3)

    if not durable:
        return  # cancel needs the Resonate server: local mode keeps workflows inside one processor
    wait_for(lambda: json.loads(admin(kube, "status", long, "--json"))["workflows"][-1]["sleeping_until"],
             120, "the long tombstone asleep between batches", every=2)
    print(admin(kube, "cancel", long))
    records = wait_for(lambda: [r for r in read_processed(kube) if r["key"] == long] or None, 120,
                       "the cancelled workflow's processed record", every=3)
    assert [r["value"]["status"] for r in records] == ["cancelled"]


def test_helm_uninstall_removes_every_workload(release):
    kube, name, durable, _ = release
    resonate_claims = [c["metadata"]["name"] for c in kube.items("pvc", "app.kubernetes.io/component=resonate")]
    kube.helm("uninstall", name, "--wait", "--timeout", "5m")
    kinds = "deployments,statefulsets,replicasets,jobs,cronjobs,services,configmaps,secrets,poddisruptionbudgets,serviceaccounts"
    wait_for(lambda: all(p["metadata"]["labels"].get("app.kubernetes.io/component") == "helm-test"
                         for p in kube.items("pods", f"app.kubernetes.io/instance={name}")), 120, "the release's pods gone")
    left = kube.items(f"{kinds},pods", f"app.kubernetes.io/instance={name}")
    # Documented exceptions (docs/kubernetes.md): Helm never deletes test hooks on uninstall (the
    # last `helm test` pod and its ConfigMap stay for their logs), and the Resonate server's PVC
    # is kept so its promises survive a reinstall.
    leftovers = sorted(f"{i['kind']}/{i['metadata']['labels']['app.kubernetes.io/component']}" for i in left)
    assert leftovers == ["ConfigMap/helm-test", "Pod/helm-test"], leftovers
    claims = [c["metadata"]["name"] for c in kube.items("pvc", f"app.kubernetes.io/instance={name}")]
    assert claims == (resonate_claims if durable else [])
    if durable:
        assert len(claims) == 1
