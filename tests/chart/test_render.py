"""The chart lints, renders for every values file, and passes offline Kubernetes schemas."""

from __future__ import annotations

from collections import Counter

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.chart.custom_resources import validate_custom_resource
from tests.chart.manifests import (
    CHART,
    VALUES,
    RenderError,
    find,
    helm,
    one,
    render,
    schema_problems,
)

# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
SCHEMA_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict(values: str) -> None:
    result = helm("lint", "--strict", str(CHART), *[a for path in VALUES[values] for a in ("--values", str(path))])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("values", list(VALUES))
def test_rendered_objects_match_kubernetes_schemas(values: str, version: str) -> None:
    problems = schema_problems(render(values), version)
    assert not problems, "\n".join(problems)


def test_the_custom_resource_check_catches_a_misspelled_field() -> None:
    monitor = next(d for d in render("full") if d["kind"] == "ServiceMonitor")
    validate_custom_resource(monitor)
    monitor = copy.deepcopy(monitor)
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(monitor)


EXPECTED_KINDS = {
    "default": {
        "StatefulSet": 1, "Deployment": 2, "Job": 1, "CronJob": 1, "Pod": 1,
        "PodDisruptionBudget": 1, "NetworkPolicy": 0, "HorizontalPodAutoscaler": 0,
        "PersistentVolumeClaim": 1,
    },
    "kind": {"Deployment": 4, "PodDisruptionBudget": 1, "NetworkPolicy": 0},
    # Resonate on the chart's PostgreSQL (a second StatefulSet, its claim a volumeClaimTemplate).
    # Three brokers (a PodDisruptionBudget of their own beside the processors').
    "full": {
        "StatefulSet": 2, "Deployment": 4, "PodDisruptionBudget": 2, "HorizontalPodAutoscaler": 1,
        "NetworkPolicy": 5, "PersistentVolumeClaim": 0, "Ingress": 2, "ServiceMonitor": 2,
        "PrometheusRule": 1, "ScaledObject": 0, "Secret": 0,
    },
    # Resonate on an external PostgreSQL: no claim for the server, no database of the chart's.
    "postgres": {"StatefulSet": 1, "Deployment": 2, "PersistentVolumeClaim": 0, "Secret": 0},
    # No Redpanda: no StatefulSet, and its NetworkPolicy goes with it.
    "external-kafka": {"StatefulSet": 0, "Deployment": 4, "NetworkPolicy": 3},
    "keda": {"ScaledObject": 1, "HorizontalPodAutoscaler": 0, "PodDisruptionBudget": 1},
    # The cluster of `make cluster-up`: Kafka stands in for Redpanda beside the chart (with a
    # policy of its own, k8s/cluster/kafka.yaml), one processor, policies on.
    "cluster": {"StatefulSet": 0, "Deployment": 3, "CronJob": 1, "PersistentVolumeClaim": 1, "PodDisruptionBudget": 0,
                "NetworkPolicy": 3},
    # The cluster tier's layers on it (tests/cluster): the HPA, three processors under a budget,
    # two for the production day (its OOM limit too), and the server on the bundled PostgreSQL.
    "cluster+hpa": {"Deployment": 3, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 0},
    # KEDA's ScaledObject instead of the HPA (tests/cluster/test_keda.py, CLUSTER_KEDA=1).
    "cluster+keda": {"Deployment": 3, "ScaledObject": 1, "HorizontalPodAutoscaler": 0, "PodDisruptionBudget": 0},
    "cluster+nodes": {"Deployment": 3, "PodDisruptionBudget": 1},
    "cluster+scenario": {"Deployment": 3, "PodDisruptionBudget": 0},
    "cluster+production-day": {"Deployment": 3, "PodDisruptionBudget": 1, "PersistentVolumeClaim": 1},
    "cluster+oom": {"Deployment": 3, "PodDisruptionBudget": 1},
    "cluster+postgres": {"StatefulSet": 1, "Deployment": 3, "PersistentVolumeClaim": 0, "PodDisruptionBudget": 1,
                         "NetworkPolicy": 4},
}


def test_every_values_file_has_expectations() -> None:
    assert set(EXPECTED_KINDS) == set(VALUES)


@pytest.mark.parametrize("values", list(VALUES))
def test_values_file_renders_the_expected_objects(values: str) -> None:
    kinds = Counter(doc["kind"] for doc in render(values))
    for kind, count in EXPECTED_KINDS[values].items():
        assert kinds[kind] == count, f"{values}: {kind} x{kinds[kind]}, expected {count}: {kinds}"
    names = [(d["kind"], d["metadata"]["name"]) for d in render(values)]
    assert len(names) == len(set(names)), "duplicate object names"


def test_schema_rejects_unknown_values() -> None:
    with pytest.raises(RenderError, match="processorr|additional properties"):
        render("default", sets=["processorr.replicas=3"])


def test_schema_rejects_out_of_range_values() -> None:
    with pytest.raises(RenderError, match="maxInFlight"):
        render("default", sets=["processor.maxInFlight=0"])
    with pytest.raises(RenderError, match="shutdownGraceSeconds"):  # the processor needs >= 1 s
        render("default", sets=["processor.shutdownGraceSeconds=0"])


def test_persistence_off_uses_no_claims() -> None:
    docs = render("default", sets=["resonate.persistence.enabled=false", "redpanda.persistence.enabled=false"])
    assert not find(docs, "PersistentVolumeClaim")
    statefulset = one(docs, "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
