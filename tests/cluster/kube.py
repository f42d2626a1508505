"""Talking to the cluster of `make cluster-up` the way a user does: kubectl and helm."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_STATE = REPO / ".cache" / "cluster"
BIN = REPO / ".cache" / "bin"
CHART = REPO / "charts" / "tombstone-pipeline"
CLUSTER_CONFIG = REPO / "k8s" / "cluster"


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
