"""The production day: what happens to a running pipeline in production, on both storage backends
of the Resonate server (SQLite on its PVC, and the chart's bundled PostgreSQL). Each step produces
a burst of tombstones, does its fault while their workflows are in flight or asleep, and asserts
that every one of them reaches `processed`; it prints one line: produced, processed, duplicate
records, how long after the fault the first and the last workflow completed (their records'
completed_at) and when all records could be read from `processed` (polled: a few seconds late).

Steps: delete the Resonate server pod (and the database pod on PostgreSQL), delete the broker pod
(its data on a PVC), `helm upgrade` of a processor value and the chart's version (the stateful
pods must not restart), processors scaled to 0 for longer than their lease, a SIGKILL of a
processor's main process from its node (no SIGTERM: no drain), and an OOM kill (a memory limit
the processor cannot start in), recovered by an upgrade to a sane one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from harness.ledger import Kill
from tests.cluster.kube import (
    CHART,
    CLUSTER_CONFIG,
    RELEASE,
    Kube,
    await_processed,
    component_name,
    delete_ledger,
    durable,
    has_span,
    install,
    jaeger_trace,
    metrics_of,
    namespace_with_broker,
    pod_ready,
    processors,
    produce,
    values_args,
    wait_for,
)
from tests.support.faults import judge

pytestmark = pytest.mark.cluster

DAY_VALUES = Path(__file__).with_name("production-day-values.yaml")
OOM_VALUES = Path(__file__).with_name("oom-values.yaml")
DAY = yaml.safe_load(DAY_VALUES.read_text())
LEASE = DAY["processor"]["resonateTtlSeconds"]
PROCESSORS = DAY["processor"]["replicas"]
BACKENDS = {"sqlite": [], "postgres": [CLUSTER_CONFIG / "values-postgres.yaml"]}
NODE_RUN = Path("/run/tombstone-cluster")  # scripts/cluster.sh: each node's containerd socket


@dataclass
class Day:
    kube: Kube
    backend: str
    values: list[Path]
    steps: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", params=list(BACKENDS))
def day(request):
    """The chart installed for the day on one backend, then uninstalled; its volumes must be gone
    afterwards (deleted claims are deleted volumes: a reused cluster does not fill up)."""
    if not durable():
        pytest.skip("the production day needs the Resonate server image (a server binary)")
    backend = request.param
    values = [DAY_VALUES, *BACKENDS[backend]]
    with namespace_with_broker(f"tombstone-day-{backend[:2]}") as kube:
        took = install(kube, *values)
        print(f"\nproduction day on {backend}: namespace {kube.namespace}, helm install --wait: {took:.0f}s")
        yield Day(kube, backend, values)
    wait_for(lambda: not volumes_of(kube.namespace), 300, f"the volumes of {kube.namespace} deleted", every=3)


def volumes_of(namespace: str) -> list[str]:
    return [pv["metadata"]["name"] for pv in Kube("default").json("get", "pv")["items"]
            if pv["spec"].get("claimRef", {}).get("namespace") == namespace]


def in_flight(kube: Kube) -> float:
    return sum(metrics_of(kube, p["metadata"]["name"], "tombstones_in_flight") or 0
               for p in processors(kube) if pod_ready(p))


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def step(day: Day, name: str, fault: Callable[[], str]) -> list[dict]:
    """Produce, wait for work in flight, run ``fault`` (it returns what it saw), wait until every
    tombstone is processed; print the step's line and return its records."""
    kube = day.kube
    day.steps.append(name)
    ids = produce(kube, f"day{len(day.steps)}")
    wait_for(lambda: in_flight(kube) > 0, 60, "workflows in flight before the fault", every=0.5)
    at, started = time.time(), time.monotonic()
    seen = fault()
    done = await_processed(kube, ids, 600, f"{len(ids)} tombstones processed after: {name}")
    completed = sorted(epoch(r["value"]["completed_at"]) for r in done.records)
    after = [c - at for c in completed if c >= at]
    resume = f"{after[0]:.0f}s" if after else "-"
    print(f"production day | {day.backend:8} | {name:37} | produced {len(ids)}, processed {done.tombstones}, "
          f"duplicates {done.duplicates} | after the fault: first workflow done {resume}, last "
          f"{max(completed) - at:.0f}s, all on `processed` {done.at - started:.0f}s | {seen}")
    assert done.tombstones == len(ids)
    return done.records


def one(kube: Kube, component: str) -> dict | None:
    """The component's pod, when there is exactly one (not while it is being replaced)."""
    pods = [p for p in kube.items("pods", f"app.kubernetes.io/component={component}")
            if not p["metadata"].get("deletionTimestamp")]
    return pods[0] if len(pods) == 1 else None


def replace_pod(kube: Kube, component: str, what: str) -> str:
    """Deletes the component's one pod (a normal delete: SIGTERM, its grace period) and waits for
    its replacement to be ready."""
    old = wait_for(lambda: one(kube, component), 120, f"the {what} pod")
    started = time.monotonic()
    kube.kubectl("delete", "pod", old["metadata"]["name"], "--wait=false")
    new = wait_for(lambda: (p := one(kube, component)) is not None and p["metadata"]["uid"] != old["metadata"]["uid"]
                   and pod_ready(p) and p, 300, f"a new {what} pod ready")
    return f"{what} pod replaced, ready after {time.monotonic() - started:.0f}s on {new['spec']['nodeName']}"


def test_deleting_the_resonate_server_pod_and_its_database_pod(day):
    step(day, "delete the Resonate server pod", lambda: replace_pod(day.kube, "resonate", "server"))
    # (on SQLite the promises are in a file on the server's own PVC: there is no database pod;
    # a step, not a skipped test, since CI=true fails every skip but the durable tier's)
    if day.backend == "postgres":
        step(day, "delete the PostgreSQL pod", lambda: replace_pod(day.kube, "postgresql", "database"))


def test_deleting_the_broker_pod(day):
    kube = day.kube
    claim = kube.json("get", "pvc", "data-kafka-0")["spec"]["volumeName"]

    def fault() -> str:
        old = kube.json("get", "pod", "kafka-0")["metadata"]["uid"]
        started = time.monotonic()
        kube.kubectl("delete", "pod", "kafka-0", "--wait=false")
        wait_for(lambda: (p := kube.json("get", "pod", "kafka-0"))["metadata"]["uid"] != old and pod_ready(p),
                 300, "the broker back")
        return f"broker pod replaced, ready after {time.monotonic() - started:.0f}s, on the same volume"

    step(day, "delete the broker pod", fault)
    assert kube.json("get", "pvc", "data-kafka-0")["spec"]["volumeName"] == claim


def stateful_pods(kube: Kube) -> dict[str, tuple[str, int]]:
    """uid and restarts of the pods that keep state: broker, server, database."""
    pods = kube.items("pods", "app.kubernetes.io/component in (broker,resonate,postgresql)")
    return {p["metadata"]["name"]: (p["metadata"]["uid"], sum(c["restartCount"] for c in p["status"]["containerStatuses"]))
            for p in pods if not p["metadata"].get("deletionTimestamp")}


def test_helm_upgrade_of_a_processor_value_and_the_chart_version(day, tmp_path):
    kube = day.kube
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    bumped = meta["version"] + "-day"
    (chart / "Chart.yaml").write_text((chart / "Chart.yaml").read_text().replace(
        f"version: {meta['version']}", f"version: {bumped}", 1))
    before = stateful_pods(kube)
    old_processors = {p["metadata"]["name"] for p in processors(kube)}
    assert len(before) == (3 if day.backend == "postgres" else 2), before

    def fault() -> str:
        started = time.monotonic()
        kube.helm("upgrade", RELEASE, str(chart), *values_args(*day.values), "--set", "processor.maxInFlight=40",
                  "--wait", "--timeout", "10m")
        return f"helm upgrade to chart {bumped} --wait: {time.monotonic() - started:.0f}s"

    step(day, "helm upgrade (processor value, chart)", fault)
    (release,) = json.loads(kube.helm("list", "-o", "json"))
    assert release["chart"] == f"{meta['name']}-{bumped}"
    assert stateful_pods(kube) == before, "the broker, the server and the database kept their pods"
    assert not old_processors & {p["metadata"]["name"] for p in processors(kube)}, "the processors were replaced"


def test_processors_scaled_to_zero_for_longer_than_a_lease(day):
    kube = day.kube
    deployment = component_name(kube, "deployments", "processor")

    def fault() -> str:
        kube.kubectl("scale", f"deployment/{deployment}", "--replicas=0")
        gone = wait_for(lambda: not kube.items("pods", "app.kubernetes.io/component=processor") and time.monotonic(),
                        120, "no processor left")
        # the hold itself is the scenario: no processor while every lease runs out
        wait_for(lambda: not kube.items("pods", "app.kubernetes.io/component=processor")
                 and time.monotonic() > gone + 2 * LEASE, 60 + 2 * LEASE, f"zero processors for {2 * LEASE}s")
        kube.kubectl("scale", f"deployment/{deployment}", f"--replicas={PROCESSORS}")
        return f"zero processors for {time.monotonic() - gone:.0f}s (lease {LEASE}s), then {PROCESSORS}"

    step(day, "processors scaled to 0 and back", fault)


def container_status(kube: Kube, pod: str) -> dict:
    (status,) = [c for c in kube.json("get", "pod", pod)["status"]["containerStatuses"] if c["name"] == "processor"]
    return status


def main_process(node: str, container_id: str) -> int:
    """The host pid of the processor's main process: the container's init (tini) is the task
    containerd knows; the processor is its child."""
    tasks = subprocess.run(["ctr", "--address", str(NODE_RUN / node / "containerd.sock"), "-n", "k8s.io",
                            "tasks", "ls"], capture_output=True, text=True, check=True, timeout=30).stdout
    (init,) = [int(line.split()[1]) for line in tasks.splitlines()[1:] if line.split()[0] == container_id]
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    return int(children[0]) if children else init


def test_sigkill_of_a_processor_from_its_node(day):
    if os.geteuid() != 0:
        pytest.skip("killing a container's process from its node needs root")
    kube = day.kube
    kill: list[Kill] = []

    def fault() -> str:
        pod = wait_for(lambda: next((p for p in processors(kube) if pod_ready(p)
                                     and (metrics_of(kube, p["metadata"]["name"], "tombstones_in_flight") or 0) > 0), None),
                       60, "a processor with work in flight")
        name = pod["metadata"]["name"]
        status = container_status(kube, name)
        pid = main_process(pod["spec"]["nodeName"], status["containerID"].split("://", 1)[1])
        flying = metrics_of(kube, name, "tombstones_in_flight")
        kill.append(Kill(at=time.time(), pid=name, how="SIGKILL"))
        os.kill(pid, signal.SIGKILL)
        restarted = wait_for(lambda: (c := container_status(kube, name))["restartCount"] == status["restartCount"] + 1
                             and c, 180, f"{name} restarted by the kubelet")
        terminated = restarted["lastState"]["terminated"]
        assert terminated["exitCode"] == 128 + signal.SIGKILL, terminated
        return (f"SIGKILL to pid {pid} on {pod['spec']['nodeName']} with {flying:.0f} in flight: exit "
                f"{terminated['exitCode']} ({terminated.get('reason')}), restartCount {restarted['restartCount']}")

    records = step(day, "SIGKILL of a processor's process", fault)
    # Finished steps are not run again: from the traces, only a batch in flight at the kill ran twice.
    first = {}
    for record in records:
        first.setdefault(record["key"], record)
    jaeger = component_name(kube, "services", "jaeger")
    traces = {}

    def complete() -> bool:
        for tombstone_id, record in first.items():
            if not has_span(traces.get(tombstone_id), "send processed"):
                traces[tombstone_id] = jaeger_trace(kube, jaeger, record["traceparent"].split("-")[1])
        return all(has_span(t, "send processed") for t in traces.values())

    try:
        wait_for(complete, 60, "every trace complete")
    except AssertionError:
        pass  # spans in the killed process's export buffer are lost with it
    traces = {t: trace for t, trace in traces.items() if trace}
    ledger = delete_ledger(traces)
    verdict = judge(list(first), [(r["key"], json.dumps(r["value"]).encode()) for r in first.values()], ledger, kill)
    for line in verdict.lines(kill):
        print(f"production day | {day.backend:8} |   {line.strip()}")
    assert verdict.unexplained_redos == [], "only a step in flight at the kill may run again"


def test_an_oom_kill_then_a_sane_limit(day):
    kube = day.kube
    limit = yaml.safe_load(OOM_VALUES.read_text())["processor"]["resources"]["limits"]["memory"]
    args = values_args(*day.values)

    def oom_killed() -> str | None:
        for pod in processors(kube):
            for c in pod["status"].get("containerStatuses", []):
                for state in (c.get("lastState", {}), c.get("state", {})):
                    if state.get("terminated", {}).get("reason") == "OOMKilled":
                        return pod["metadata"]["name"]
        return None

    def fault() -> str:
        started = time.monotonic()
        kube.helm("upgrade", RELEASE, str(CHART), *args, "--values", str(OOM_VALUES))
        victim = wait_for(oom_killed, 300, f"a processor OOMKilled under a {limit} limit")
        ready_old = sum(pod_ready(p) for p in processors(kube))
        seen = f"{victim} OOMKilled after {time.monotonic() - started:.0f}s ({ready_old} processors still ready)"
        kube.helm("upgrade", RELEASE, str(CHART), *args, "--wait", "--timeout", "10m")
        return f"{seen}; upgrade to the sane limit --wait: {time.monotonic() - started:.0f}s in all"

    step(day, f"OOM kill ({limit}), then a sane limit", fault)
    assert not oom_killed(), "no processor of the sane limit was OOM-killed"
