"""Render the Helm chart and look inside the rendered manifests.

Everything here works on plain dicts as ``yaml.safe_load_all`` returns them, so a test can
render once, change a manifest (e.g. delete an env var) and run the same checks again.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.chart.custom_resources import SCHEMAS, validate_custom_resource

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tombstone-pipeline"
# Every values file of the chart: "default" and the part after "values-" of the others; the
# cluster's of `make cluster-up` (k8s/cluster/values.yaml) and the files the cluster tier layers
# on it (tests/cluster/*-values.yaml, k8s/cluster/values-postgres.yaml), each as it is installed.
CLUSTER_VALUES = ROOT / "k8s" / "cluster" / "values.yaml"
CLUSTER_TESTS = ROOT / "tests" / "cluster"
VALUES: dict[str, tuple[Path, ...]] = {"default": (CHART / "values.yaml",)} | {
    path.stem.removeprefix("values-"): (path,) for path in sorted(CHART.glob("values-*.yaml"))
} | {"cluster": (CLUSTER_VALUES,)} | {
    f"cluster+{path.stem.removesuffix('-values')}": (CLUSTER_VALUES, *layers, path)
    for path in sorted(CLUSTER_TESTS.glob("*-values.yaml"))
    for layers in [(CLUSTER_TESTS / "scenario-values.yaml",) if path.stem == "nodes-values"
                   else (CLUSTER_TESTS / "production-day-values.yaml",) if path.stem == "oom-values" else ()]
} | {"cluster+postgres": (CLUSTER_VALUES, ROOT / "k8s" / "cluster" / "values-postgres.yaml",
                         CLUSTER_TESTS / "production-day-values.yaml")}
RELEASE = "tomb"
NAMESPACE = "pipeline"

Manifest = dict[str, Any]


class HelmUnavailable(RuntimeError):
    pass


@functools.cache
def helm_binary() -> str:
    """$HELM, .cache/bin/helm or helm on PATH. Never built here: building takes minutes, which is
    the set-up's job (`make test` runs `scripts/k8s-tools.sh helm` first), not a test's."""
    for candidate in (os.environ.get("HELM"), str(ROOT / ".cache" / "bin" / "helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    if found := shutil.which("helm"):
        return found
    raise HelmUnavailable(
        "helm is neither in $HELM, .cache/bin nor on PATH; `make k8s-tools` builds it (needs Go)"
    )


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


class RenderError(AssertionError):
    pass


@functools.cache
def _render_text(values: tuple[str, ...], sets: tuple[str, ...], release: str) -> str:
    args = ["template", release, str(CHART), "--namespace", NAMESPACE]
    for name in values:
        for path in VALUES.get(name, (name,)):
            args += ["--values", str(path)]
    for item in sets:  # "json:key=value" = --set-json (numbers stay numbers)
        args += ["--set-json", item[5:]] if item.startswith("json:") else ["--set", item]
    result = helm(*args)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result.stdout


def render(
    *values: str, sets: tuple[str, ...] | list[str] = (), release: str = RELEASE
) -> list[Manifest]:
    """``helm template`` with the named values files (default/kind/full or a path) and --set
    (``json:key=value`` for --set-json)."""
    text = _render_text(tuple(values), tuple(sets), release)
    return [doc for doc in yaml.safe_load_all(text) if doc]


# ---- finding things -------------------------------------------------------------------------

def component(manifest: Manifest) -> str | None:
    return manifest["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def find(docs: list[Manifest], kind: str, component_name: str | None = None) -> list[Manifest]:
    return [
        d for d in docs
        if d["kind"] == kind and (component_name is None or component(d) == component_name)
    ]


def one(docs: list[Manifest], kind: str, component_name: str | None = None) -> Manifest:
    found = find(docs, kind, component_name)
    assert len(found) == 1, f"expected one {kind} {component_name or ''}, found {len(found)}"
    return found[0]


def pod_template(manifest: Manifest) -> dict[str, Any] | None:
    """The pod (metadata and spec) a workload runs: the manifest itself for a Pod."""
    kind = manifest["kind"]
    if kind == "Pod":
        return manifest
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        return manifest["spec"]["template"]
    if kind == "CronJob":
        return manifest["spec"]["jobTemplate"]["spec"]["template"]
    return None


@dataclass
class Workload:
    manifest: Manifest
    spec: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    @property
    def component(self) -> str | None:
        return component(self.manifest)

    @property
    def pod_labels(self) -> dict[str, str]:
        return pod_template(self.manifest)["metadata"].get("labels", {})

    def containers(self) -> list[dict[str, Any]]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def workloads(docs: list[Manifest]) -> Iterator[Workload]:
    for doc in docs:
        if (template := pod_template(doc)) is not None:
            yield Workload(doc, template["spec"])


def workload(docs: list[Manifest], component_name: str) -> Workload:
    found = [w for w in workloads(docs) if w.component == component_name]
    assert len(found) == 1, f"expected one workload {component_name}, found {len(found)}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Env entries by name (the whole EnvVar, so valueFrom stays visible)."""
    return {item["name"]: item for item in container.get("env", [])}


def env_values(container: dict[str, Any], placeholder: str = "from-a-secret") -> dict[str, str]:
    """Literal env values; valueFrom entries become a placeholder (pod name for fieldRefs)."""
    values = {}
    for name, item in env_of(container).items():
        if "value" in item:
            values[name] = str(item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            values[name] = "tomb-processor-abc12"
        else:
            values[name] = placeholder
    return values


def main_container(work: Workload) -> dict[str, Any]:
    return work.spec["containers"][0]


# ---- checks that return problems (empty = fine), so tests can prove they catch them ------

def missing_env(container: dict[str, Any], required: set[str]) -> set[str]:
    """Required variables that the container does not set (or sets to an empty value)."""
    present = {
        name for name, item in env_of(container).items()
        if item.get("valueFrom") or str(item.get("value", "")).strip()
    }
    return required - present


def security_problems(work: Workload) -> list[str]:
    problems = []
    pod = work.spec.get("securityContext") or {}
    if pod.get("runAsNonRoot") is not True:
        problems.append(f"{work}: pod securityContext.runAsNonRoot is not true")
    if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{work}: pod seccompProfile is not RuntimeDefault")
    if pod.get("runAsUser") == 0:
        problems.append(f"{work}: pod runs as uid 0")
    for c in work.containers():
        ctx = c.get("securityContext") or {}
        where = f"{work} container {c['name']}"
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in (ctx.get("capabilities") or {}).get("drop", []):
            problems.append(f"{where}: capabilities are not dropped")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{where}: runs as uid 0")
    return problems


def resource_problems(work: Workload) -> list[str]:
    problems = []
    for c in work.containers():
        res = c.get("resources") or {}
        where = f"{work} container {c['name']}"
        for field in ("cpu", "memory"):
            if not (res.get("requests") or {}).get(field):
                problems.append(f"{where}: no {field} request")
        if not (res.get("limits") or {}).get("memory"):
            problems.append(f"{where}: no memory limit")
    return problems


def schema_problems(docs: list[Manifest], version: str) -> list[str]:
    """Objects that fail strict validation: the Kubernetes schemas of ``version``
    (kubernetes-validate), or for custom resources the CRD excerpts in custom_resources."""
    problems = []
    for doc in docs:
        try:
            if doc["kind"] in SCHEMAS:
                validate_custom_resource(doc)
            else:
                kubernetes_validate.validate(doc, version, strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    return problems
