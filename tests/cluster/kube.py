"""Talking to the cluster of `make cluster-up` the way a user does: kubectl and helm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.resonate import server_binary

REPO = Path(__file__).resolve().parents[2]
CLUSTER_STATE = REPO / ".cache" / "cluster"
BIN = REPO / ".cache" / "bin"
CHART = REPO / "charts" / "tombstone-pipeline"
CLUSTER_CONFIG = REPO / "k8s" / "cluster"
PROCESSOR = "app.kubernetes.io/component=processor"
PROCESSOR_PORT = 8080  # health, readiness, metrics
JAEGER_UI_PORT = 16686
TOMBSTONE_ID = re.compile(r"[\w.-]+")  # what record-producer --print-ids prints, one a line
RELEASE = "tombstone"  # the name k8s/cluster/kafka.yaml's NetworkPolicy admits
# Processors in local mode when no server image could be built (no Resonate binary).
LOCAL_MODE = ["--set", "resonate.enabled=false", "--set", "resonate.localMode=true"]


class CommandFailed(AssertionError):
    pass


def _tool(name: str, env_name: str) -> str:
    return os.environ.get(env_name) or str(BIN / name)


@dataclass(frozen=True)
class Kube:
    """kubectl and helm against one namespace of the cluster."""

    namespace: str
    kubeconfig: Path = CLUSTER_STATE / "admin.kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, tool: str, *args: str, timeout: float = 120, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        binary = _tool("kubectl", "KUBECTL") if tool == "kubectl" else _tool("helm", "HELM")
        result = subprocess.run(
            [binary, "--namespace", self.namespace, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, input=input,
        )
        if check and result.returncode != 0:
            raise CommandFailed(f"{tool} {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return result

    def kubectl(self, *args: str, timeout: float = 120) -> str:
        return self.run("kubectl", *args, timeout=timeout).stdout

    def helm(self, *args: str, timeout: float = 900) -> str:
        return self.run("helm", *args, timeout=timeout).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def items(self, kind: str, selector: str) -> list[dict]:
        return self.json("get", kind, "-l", selector)["items"]

    def raw(self, path: str, timeout: float = 30) -> str:
        """A GET through the API server (its pod and service proxies reach inside the cluster)."""
        return self.kubectl("get", "--raw", path, timeout=timeout)

    def pod_metrics(self, pod: str, port: int) -> str:
        return self.raw(f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/metrics")

    def service_get(self, service: str, port: int, path: str) -> str:
        return self.raw(f"/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy{path}")


def pod_ready(pod: dict) -> bool:
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod.get("status", {}).get("phase") == "Running" and conditions.get("Ready") == "True"


# Connects to each (name, host, port) from inside a pod: "open", "refused" (a reset: nothing
# listens, nothing filters) or "dropped" (no answer: a NetworkPolicy drops the packets).
PROBE = """
import json, socket, sys
result = {}
for name, host, port in json.loads(sys.argv[1]):
    s = socket.socket()
    s.settimeout(float(sys.argv[2]))
    try:
        s.connect((host, port))
        result[name] = "open"
    except ConnectionRefusedError:
        result[name] = "refused"
    except (socket.timeout, TimeoutError):
        result[name] = "dropped"
    except OSError as exc:
        result[name] = f"error: {exc}"
    finally:
        s.close()
print(json.dumps(result))
"""


def probe_connections(kube: Kube, pod: str, labels: dict[str, str], targets: list[tuple[str, str, int]],
                      image: str, timeout: float = 4) -> dict[str, str]:
    """Runs PROBE in a pod of ``kube.namespace`` carrying ``labels`` (what NetworkPolicies select
    on) and returns its verdict per target name."""
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": image, "imagePullPolicy": "Never",
                "args": ["python", "-c", PROBE, json.dumps(targets), str(timeout)],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
    kube.run("kubectl", "apply", "-f", "-", input=json.dumps(manifest))
    try:
        wait_for(lambda: kube.json("get", "pod", pod)["status"].get("phase") in ("Succeeded", "Failed"),
                 60 + timeout * len(targets), f"probe pod {pod} done")
        return json.loads(kube.kubectl("logs", pod).strip().splitlines()[-1])
    finally:
        kube.run("kubectl", "delete", "pod", pod, "--wait=false", check=False)


def metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(check, timeout: float, what: str, every: float = 1.0):
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except CommandFailed as exc:  # the API or a pod may be between states
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s" + (f" (last error: {last_error})" if last_error else ""))


def durable() -> bool:
    """Whether `scripts/cluster.sh images` built a Resonate server image (from a local binary)."""
    return server_binary() is not None


def require_cluster() -> None:
    if not (CLUSTER_STATE / "admin.kubeconfig").exists():
        # In CI a cluster that did not come up is a failed preparation, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail("no cluster (CI: the cluster tier must run)")
        pytest.skip("no cluster: `make cluster-up` assembles one")


@contextmanager
def namespace_with_broker(prefix: str, broker: list[dict] | None = None, namespace: str | None = None) -> Iterator[Kube]:
    """A namespace of its own (``namespace``, or a new name from ``prefix``) with the broker
    stand-in (k8s/cluster/kafka.yaml, or ``broker``: its documents changed), deleted afterwards
    with the release in it and its volumes."""
    require_cluster()
    kube = Kube(namespace or f"{prefix}-{uuid.uuid4().hex[:6]}")
    kube.run("kubectl", "create", "namespace", kube.namespace)
    try:
        if broker is None:
            kube.kubectl("apply", "-f", str(CLUSTER_CONFIG / "kafka.yaml"))
        else:
            kube.run("kubectl", "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": broker}))
        yield kube
    finally:
        kube.run("helm", "uninstall", RELEASE, "--wait", check=False)
        kube.run("kubectl", "delete", "namespace", kube.namespace, "--wait=false", check=False)


def install(kube: Kube, *values: Path, extra: tuple[str, ...] = ()) -> float:
    """helm install of the chart with k8s/cluster/values.yaml and ``values`` on top (local mode
    without a server image); returns how long `--wait` took."""
    started = time.monotonic()
    kube.helm("install", RELEASE, str(CHART), *values_args(*values), *extra, "--wait", "--timeout", "10m")
    return time.monotonic() - started


def values_args(*values: Path) -> list[str]:
    """helm's --values for k8s/cluster/values.yaml and ``values`` on top (local mode without a
    server image)."""
    args = [a for path in (CLUSTER_CONFIG / "values.yaml", *values) for a in ("--values", str(path))]
    return args + ([] if durable() else LOCAL_MODE)


# Reads the whole `processed` topic inside the cluster (a processor pod has the client and the
# settings), one JSON line per record: key, value and its traceparent.
READ_PROCESSED = """
import json, time
from confluent_kafka import Consumer, TopicPartition
from tombstone_common.kafka import consumer_config
from tombstone_common.settings import PipelineSettings, load_settings
settings = load_settings(PipelineSettings)
topic = settings.topic_processed
consumer = Consumer(consumer_config(settings, "cluster-test-reader"))
partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
left = {p for p, end in ends.items() if end > 0}
deadline = time.monotonic() + 60
while left and time.monotonic() < deadline:
    m = consumer.poll(1)
    if m is None or m.error():
        continue
    headers = dict(m.headers() or [])
    print(json.dumps({"key": m.key().decode(), "value": json.loads(m.value()),
                      "traceparent": headers.get("traceparent", b"").decode()}))
    if m.offset() + 1 >= ends[m.partition()]:
        left.discard(m.partition())
"""


# The partitions of the pipeline's topics as the broker reports them, from inside the cluster:
# {topic: {partition: {"leader", "replicas", "isr"}}}, broker ids being node.id (the pod ordinal).
DESCRIBE_TOPICS = """
import json
from confluent_kafka.admin import AdminClient
from tombstone_common.kafka import client_config
from tombstone_common.settings import PipelineSettings, load_settings
settings = load_settings(PipelineSettings)
topics = AdminClient(client_config(settings)).list_topics(timeout=30).topics
names = (settings.topic_tombstones, settings.topic_processed, settings.topic_dlq)
print(json.dumps({name: {p: {"leader": m.leader, "replicas": sorted(m.replicas), "isr": sorted(m.isrs)}
                         for p, m in sorted(topics[name].partitions.items())} for name in names if name in topics}))
"""


def processors(kube: Kube) -> list[dict]:
    return [p for p in kube.items("pods", PROCESSOR) if not p["metadata"].get("deletionTimestamp")]


def component_name(kube: Kube, kind: str, component: str) -> str:
    (item,) = kube.items(kind, f"app.kubernetes.io/component={component}")
    return item["metadata"]["name"]


def in_a_processor(kube: Kube, script: str) -> list[dict]:
    """Runs ``script`` in a processor's container (a ready one if there is one: one that waits
    for the server is running all the same); its JSON lines."""
    running = sorted((p for p in processors(kube) if p.get("status", {}).get("phase") == "Running"),
                     key=lambda p: not pod_ready(p))
    if not running:
        raise CommandFailed("no processor is running")
    pod = running[0]["metadata"]["name"]
    out = kube.kubectl("exec", pod, "-c", "processor", "--", "python", "-c", script, timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def admin(kube: Kube, *args: str, timeout: float = 180) -> str:
    """``record-admin ARGS`` in a processor's container, as docs/kubernetes.md shows it."""
    running = sorted((p for p in processors(kube) if p.get("status", {}).get("phase") == "Running"),
                     key=lambda p: not pod_ready(p))
    if not running:
        raise CommandFailed("no processor is running")
    pod = running[0]["metadata"]["name"]
    return kube.kubectl("exec", pod, "-c", "processor", "--", "record-admin", *args, timeout=timeout)


# Produces the tombstones given as JSON objects in argv[1], with the pipeline's own settings.
PRODUCE_TOMBSTONES = """
import json, sys
from confluent_kafka import Producer
from tombstone_common.kafka import producer_config
from tombstone_common.messages import Tombstone
from tombstone_common.settings import PipelineSettings, load_settings
settings = load_settings(PipelineSettings)
producer = Producer(producer_config(settings))
for fields in json.loads(sys.argv[1]):
    tombstone = Tombstone(**fields)
    producer.produce(settings.topic_tombstones, key=tombstone.id.encode(), value=tombstone.to_value())
assert producer.flush(30) == 0
print(json.dumps({"produced": len(json.loads(sys.argv[1]))}))
"""


def read_processed(kube: Kube) -> list[dict]:
    return in_a_processor(kube, READ_PROCESSED)


def describe_topics(kube: Kube) -> dict[str, dict[str, dict]]:
    (topics,) = in_a_processor(kube, DESCRIBE_TOPICS)
    return topics


def produce(kube: Kube, tag: str, deadline: float = 180) -> list[str]:
    """A producer Job from the release's CronJob; returns the ids it printed (--print-ids)."""
    cronjob = component_name(kube, "cronjobs", "producer")
    job = f"{cronjob}-{tag}"
    kube.kubectl("create", "job", job, f"--from=cronjob/{cronjob}")
    wait_for(lambda: kube.json("get", "job", job)["status"].get("succeeded"), deadline, f"producer Job {job} done")
    # one id a line, besides the producer's summary line and its JSON log lines
    ids = [line for line in kube.kubectl("logs", f"job/{job}").splitlines() if TOMBSTONE_ID.fullmatch(line)]
    assert ids
    return ids


@dataclass(frozen=True)
class Processed:
    records: list[dict]   # every record of the topic read, for the tombstones wanted
    tombstones: int       # how many of the tombstones wanted have one
    duplicates: int       # records beyond the first per tombstone
    at: float             # when every one had (monotonic)


def await_processed(kube: Kube, ids: list[str], deadline: float, what: str) -> Processed:
    """Waits until every id has a `processed` record."""
    wanted = set(ids)
    # (read inside a ready processor: while processors move, none may be ready for a while)
    records = wait_for(lambda: any(pod_ready(p) for p in processors(kube)) and (r := read_processed(kube))
                       and wanted <= {x["key"] for x in r} and r, deadline, what, every=3)
    ours = [r for r in records if r["key"] in wanted]
    counts = Counter(r["key"] for r in ours)
    return Processed(ours, len(counts), sum(counts.values()) - len(counts), time.monotonic())


def metrics_of(kube: Kube, pod: str, name: str) -> float | None:
    return metric_value(kube.pod_metrics(pod, PROCESSOR_PORT), name)


def jaeger_trace(kube: Kube, service: str, trace_id: str) -> dict | None:
    try:
        body = kube.service_get(service, JAEGER_UI_PORT, f"/api/traces/{trace_id}")
    except AssertionError:
        return None
    data = json.loads(body).get("data") or []
    return data[0] if data else None


def has_span(trace: dict | None, prefix: str) -> dict | None:
    names = {span["operationName"] for span in (trace or {}).get("spans", [])}
    return trace if any(n.startswith(prefix) for n in names) else None


def delete_ledger(traces: dict[str, dict]) -> list[dict]:
    """One entry per delete attempt (a `delete_batch` span), as the simulated deleter's ledger
    has it: tombstone id, batch, ok, start (epoch seconds) and the pod that ran it (as pid)."""
    ledger = []
    for tombstone_id, trace in traces.items():
        for span in trace["spans"]:
            if span["operationName"] != "delete_batch":
                continue
            tags = {t["key"]: t["value"] for t in span["tags"]}
            process = {t["key"]: t["value"] for t in trace["processes"][span["processID"]]["tags"]}
            ledger.append({"id": tombstone_id, "batch": tags["batch"], "ok": tags.get("otel.status_code") != "ERROR",
                           "at": span["startTime"] / 1e6, "pid": process["service.instance.id"].rsplit("-", 1)[0]})
    return ledger


def scale_through_a_burst(kube: Kube, scaler: str, status: Callable[[], str]) -> None:
    """One processor; a burst from the producer CronJob; the ``scaler`` (the HPA, KEDA) scales
    the processors up; every tombstone reaches `processed`; back to one processor. Prints the
    timeline with ``status()`` (what the scaler sees) at each point."""
    deployment = component_name(kube, "deployments", "processor")

    def replicas() -> int:
        return kube.json("get", "deployment", deployment)["status"].get("readyReplicas", 0)

    wait_for(lambda: replicas() == 1, 120, "one processor before the burst")
    started = time.monotonic()
    ids = produce(kube, "burst", deadline=300)
    peak = wait_for(lambda: (n := replicas()) > 1 and n, 300, f"{scaler} scaling the processors up", every=2)
    print(f"\nscaled up to {peak} processors {time.monotonic() - started:.0f}s after the burst began: {status()}")
    print(kube.kubectl("get", "pods", "-o", "wide"))
    processed = await_processed(kube, ids, 900, f"{len(ids)} tombstones processed")
    print(f"all {len(ids)} tombstones processed ({processed.duplicates} duplicate records) "
          f"{processed.at - started:.0f}s after the burst began: {status()}")
    wait_for(lambda: kube.json("get", "deployment", deployment)["spec"]["replicas"] == 1 and len(processors(kube)) == 1,
             600, f"{scaler} scaling back to one processor", every=5)
    print(f"back to one processor {time.monotonic() - processed.at:.0f}s after the last tombstone: {status()}")
