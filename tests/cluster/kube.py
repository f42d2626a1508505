"""Talking to the single-node cluster (`make cluster-up`) the way a user does: kubectl and helm."""

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

    def run(self, tool: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        binary = _tool("kubectl", "KUBECTL") if tool == "kubectl" else _tool("helm", "HELM")
        result = subprocess.run(
            [binary, "--namespace", self.namespace, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
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
