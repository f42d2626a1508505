"""Escape hatches: extraVolumes, extraVolumeMounts, extraEnvFrom, priorityClassName per component,
and extraObjects for manifests of one's own."""

from __future__ import annotations

import json

import pytest

from tests.chart.manifests import RenderError, Workload, find, main_container, one, render
from tests.chart.manifests import schema_problems, workload, workloads
from tests.chart.test_render import SCHEMA_VERSIONS

# values key -> the component label of its workload ("full" renders every one of them)
COMPONENTS = {
    "redpanda": "redpanda", "console": "console", "resonate": "resonate", "postgresql": "postgresql",
    "jaeger": "jaeger", "topicInit": "topic-init", "producer": "producer", "processor": "processor",
    "tests": "helm-test",
}
VOLUME = {"name": "extra-certs", "configMap": {"name": "corporate-ca"}}
MOUNT = {"name": "extra-certs", "mountPath": "/etc/extra-certs", "readOnly": True}
ENV_FROM = {"secretRef": {"name": "extra-env"}}


def hatches(key: str) -> list[str]:
    return [
        f"json:{key}.extraVolumes={json.dumps([VOLUME])}",
        f"json:{key}.extraVolumeMounts={json.dumps([MOUNT])}",
        f"json:{key}.extraEnvFrom={json.dumps([ENV_FROM])}",
        f"{key}.priorityClassName=pipeline-high",
    ]


def hatch_problems(work: Workload) -> list[str]:
    problems = []
    if work.spec.get("priorityClassName") != "pipeline-high":
        problems.append(f"{work}: priorityClassName {work.spec.get('priorityClassName')!r}")
    if VOLUME not in work.spec.get("volumes", []):
        problems.append(f"{work}: no extra volume")
    container = main_container(work)
    if MOUNT not in container.get("volumeMounts", []):
        problems.append(f"{work}: no extra mount")
    if container.get("envFrom") != [ENV_FROM]:
        problems.append(f"{work}: envFrom {container.get('envFrom')}")
    return problems


@pytest.mark.parametrize("key", list(COMPONENTS))
def test_every_component_takes_its_escape_hatches(key: str) -> None:
    docs = render("full", sets=hatches(key))
    own = workload(docs, COMPONENTS[key])
    assert not hatch_problems(own)
    # only its own pod
    for other in workloads(docs):
        if other.component != own.component:
            assert len(hatch_problems(other)) == 4, str(other)
    assert not schema_problems(docs, SCHEMA_VERSIONS[-1])


def test_the_hatch_check_catches_a_missing_mount() -> None:
    work = workload(render("full", sets=hatches("processor")), "processor")
    main_container(work)["volumeMounts"].remove(MOUNT)
    assert hatch_problems(work) == [f"{work}: no extra mount"]


def test_the_processors_topics_init_container_gets_the_processors_mounts_and_env_from() -> None:
    init = workload(render("default", sets=hatches("processor")), "processor").spec["initContainers"][0]
    assert init["name"] == "topics"
    assert MOUNT in init["volumeMounts"] and init["envFrom"] == [ENV_FROM]


def test_nothing_extra_by_default() -> None:
    for work in workloads(render("full")):
        assert "priorityClassName" not in work.spec, str(work)
        assert all("envFrom" not in c for c in work.containers()), str(work)


@pytest.mark.parametrize("sets, message", [
    ([f"json:processor.extraVolumeMounts={json.dumps([{'name': 'x'}])}"], "mountPath"),
    ([f"json:producer.extraVolumes={json.dumps([{'emptyDir': {}}])}"], "name"),
    (["json:jaeger.priorityClassName=5"], "priorityClassName"),
    (["json:extraObjects=[5]"], "extraObjects"),
])
def test_the_schema_rejects_malformed_hatches(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)


def test_extra_objects_are_rendered_with_tpl() -> None:
    as_map = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
              "metadata": {"name": "{{ .Release.Name }}-high"}, "value": 1000}
    as_text = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"
               "  namespace: {{ .Release.Namespace }}\n"
               "data:\n  broker: {{ include \"tombstone-pipeline.bootstrapServers\" . | quote }}\n")
    docs = render("default", sets=[f"json:extraObjects={json.dumps([as_map, as_text])}"])
    priority = one(docs, "PriorityClass")
    assert priority["metadata"]["name"] == "tomb-high" and priority["value"] == 1000
    config = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"] == "extra")
    assert config["metadata"]["namespace"] == "pipeline"
    assert config["data"]["broker"] == "tomb-tombstone-pipeline-redpanda.pipeline.svc:9092"
    assert not find(render("default"), "PriorityClass")
