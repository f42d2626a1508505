"""Operator-facing values: an external broker, every image's registry/repository/tag/digest/pull
policy, names for long release names."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
import yaml

from tests.chart.manifests import (
    VALUES,
    RenderError,
    env_of,
    find,
    one,
    pod_template,
    render,
    workload,
    workloads,
)
from tests.chart.test_render import SCHEMA_VERSIONS
from tests.chart.test_wiring import pipeline_containers

EXTERNAL = "kafka-0.kafka.kafka.svc:9092,kafka-1.kafka.kafka.svc:9092"

# Where each image is configured, and the container that runs it (component, container name).
# "full" turns every component on, so every image of the chart appears in its render.
IMAGES = {
    "images.producer": [("producer", "producer"), ("helm-test", "roundtrip")],
    "images.processor": [("processor", "processor")],
    "images.topicInit": [("topic-init", "topic-init"), ("processor", "topics")],
    "redpanda.image": [("redpanda", "redpanda")],
    "console.image": [("console", "console")],
    "console.auth.proxy.image": [("console", "login-proxy")],
    "resonate.image": [("resonate", "resonate")],
    "jaeger.image": [("jaeger", "jaeger")],
}
DIGEST = "sha256:" + "ab" * 32


def containers_by_image_value(docs) -> dict[str, list[dict]]:
    found = {}
    for value, places in IMAGES.items():
        found[value] = []
        for comp, name in places:
            w = workload(docs, comp)
            found[value] += [c for c in w.containers() if c["name"] == name]
        assert len(found[value]) == len(places), value
    return found


def all_containers(docs) -> list[dict]:
    return [c for w in workloads(docs) for c in w.containers()]


# ---- external broker ----------------------------------------------------------------------------

def test_external_broker_reaches_every_client_and_no_redpanda_is_rendered() -> None:
    docs = render("external-kafka")
    assert not [d for d in docs if "redpanda" in d["metadata"]["name"]]
    clients = pipeline_containers(docs)
    # processor + its topics init container, producer, topic-init Job, helm test pod
    assert {(w.component, c["name"]) for w, c, _ in clients} == {
        ("processor", "processor"), ("processor", "topics"), ("producer", "producer"),
        ("topic-init", "topic-init"), ("helm-test", "roundtrip"),
    }
    for w, c, _ in clients:
        assert env_of(c)["KAFKA_BOOTSTRAP_SERVERS"]["value"] == EXTERNAL, f"{w} {c['name']}"
    console = yaml.safe_load(one(docs, "ConfigMap", "console")["data"]["console.yaml"])
    assert console["kafka"]["brokers"] == EXTERNAL.split(",")
    assert "redpanda" not in console, "no Redpanda admin API without the chart's Redpanda"
    policies = {p["metadata"]["name"] for p in find(docs, "NetworkPolicy")}
    assert policies and not [p for p in policies if "redpanda" in p]


def test_the_chart_broker_is_the_default() -> None:
    docs = render("default")
    servers = env_of(workload(docs, "processor").spec["containers"][0])["KAFKA_BOOTSTRAP_SERVERS"]
    assert servers["value"] == "tomb-tombstone-pipeline-redpanda.pipeline.svc:9092"
    assert one(docs, "StatefulSet", "redpanda")


def test_console_authenticates_to_an_external_sasl_broker() -> None:
    docs = render("external-kafka", sets=[
        "kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=SCRAM-SHA-256",
        "kafka.sasl.username=console", "kafka.sasl.existingSecret=kafka-creds",
    ])
    console = yaml.safe_load(one(docs, "ConfigMap", "console")["data"]["console.yaml"])
    assert console["kafka"]["sasl"] == {
        "enabled": True, "mechanism": "SCRAM-SHA-256", "username": "console",
    }
    assert console["kafka"]["tls"] == {"enabled": True}
    env = env_of(workload(docs, "console").spec["containers"][0])
    ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "kafka-creds", "key": "password"}


def test_console_without_sasl_gets_no_credentials() -> None:
    docs = render("kind")
    console = yaml.safe_load(one(docs, "ConfigMap", "console")["data"]["console.yaml"])
    assert "sasl" not in console["kafka"] and "tls" not in console["kafka"]
    assert "KAFKA_SASL_PASSWORD" not in env_of(workload(docs, "console").spec["containers"][0])


# ---- images -------------------------------------------------------------------------------------

def test_the_image_table_covers_every_container() -> None:
    docs = render("full")
    listed = [id(c) for cs in containers_by_image_value(docs).values() for c in cs]
    assert sorted(listed) == sorted(id(c) for c in all_containers(docs))


def test_every_image_takes_repository_tag_and_pull_policy() -> None:
    sets = []
    for value in IMAGES:
        key = value.replace(".", "-")
        sets += [f"{value}.repository=example/{key}", f"{value}.tag=t-{key}",
                 f"{value}.pullPolicy=Never"]
    docs = render("full", sets=sets)
    for value, containers in containers_by_image_value(docs).items():
        key = value.replace(".", "-")
        for c in containers:
            # images.registry of values-full still prefixes the pipeline's own images
            assert c["image"].endswith(f"example/{key}:t-{key}"), (value, c["image"])
            assert c["imagePullPolicy"] == "Never", value


def test_a_digest_replaces_the_tag() -> None:
    docs = render("full", sets=[f"{value}.digest={DIGEST}" for value in IMAGES])
    for value, containers in containers_by_image_value(docs).items():
        for c in containers:
            assert c["image"].endswith(f"@{DIGEST}") and c["image"].count(":") == 1, c["image"]


def test_global_registry_replaces_every_registry() -> None:
    docs = render("full", sets=["global.imageRegistry=mirror.example:5000/"])
    images = {c["image"] for c in all_containers(docs)}
    assert images and all(i.startswith("mirror.example:5000/") for i in images), images
    assert "mirror.example:5000/redpandadata/redpanda:v25.3.9" in images
    assert "mirror.example:5000/tombstone-processor:0.1.0" in images


def test_default_images() -> None:
    images = {c["image"] for c in all_containers(render("full"))}
    assert {
        "docker.redpanda.com/redpandadata/redpanda:v25.3.9",
        "ghcr.io/resonatehq/resonate:v0.10.0",
        "jaegertracing/jaeger:2.13.0",
        "registry.example.com/tombstone/tombstone-processor:0.1.0",
    } <= images, images
    default = {c["image"] for c in all_containers(render("default"))}
    assert "tombstone-processor:0.1.0" in default


def test_pull_policy_precedence() -> None:
    # global.imagePullPolicy < images.pullPolicy (the pipeline's three) < an image's own
    docs = render("default", sets=[
        "global.imagePullPolicy=Never", "images.pullPolicy=Always",
        "images.producer.pullPolicy=IfNotPresent",
    ])
    policy = {w.component: w.spec["containers"][0]["imagePullPolicy"] for w in workloads(docs)}
    assert policy["resonate"] == policy["redpanda"] == "Never"
    assert policy["processor"] == policy["topic-init"] == "Always"
    assert policy["producer"] == policy["helm-test"] == "IfNotPresent"
    assert {c["imagePullPolicy"] for c in all_containers(render("default"))} == {"IfNotPresent"}
    assert {c["imagePullPolicy"] for c in all_containers(render("external-kafka"))} == {"Never"}


@pytest.mark.parametrize("sets, message", [
    (["resonate.image.digest=latest"], "digest"),
    (["images.processor.pullPolicy=Sometimes"], "pullPolicy"),
    (["global.imagePullPolicy=Sometimes"], "imagePullPolicy"),
    (["jaeger.image.tag="], "tag"),
])
def test_schema_rejects_bad_image_values(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)


# ---- names --------------------------------------------------------------------------------------

# helm's own limit on release names; names of this length broke the chart before.
LONG_RELEASE = "my-fairly-long-release-name-for-the-tombstone-pipelin"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kubernetes appends to these names: a CronJob's Jobs get "-<8 digits>" (limit 52); a
# StatefulSet's controller-revision-hash label is "<name>-<up to 10 characters>" (<= 63).
NAME_LIMIT = {"CronJob": 52, "StatefulSet": 63 - 11}


def name_problems(docs) -> list[str]:
    problems = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        limit = NAME_LIMIT.get(kind, 63)
        if len(name) > limit or not DNS_LABEL.match(name):
            problems.append(f"{kind}/{name}: {len(name)} characters (limit {limit}) or not DNS-1123")
        labels = dict(doc["metadata"].get("labels") or {})
        if (template := pod_template(doc)) is not None:
            labels |= template["metadata"].get("labels") or {}
        for key, value in labels.items():
            if len(str(value)) > 63 or not LABEL_VALUE.match(str(value)):
                problems.append(f"{kind}/{name}: label {key}={value} is not a valid label value")
    return problems


@pytest.mark.parametrize("values", list(VALUES))
def test_a_53_character_release_renders_names_kubernetes_accepts(values: str) -> None:
    assert len(LONG_RELEASE) == 53
    docs = render(values, release=LONG_RELEASE)
    assert not name_problems(docs), "\n".join(name_problems(docs))
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects got the same name"
    for version in SCHEMA_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_name_check_catches_the_old_cut() -> None:
    """The chart used to cut the base name to 45 characters and then add the component."""
    cronjob = one(render("default", release=LONG_RELEASE), "CronJob", "producer")
    old = copy.deepcopy(cronjob)
    old["metadata"]["name"] = (LONG_RELEASE[:45] + "-producer")
    assert not name_problems([cronjob])
    assert name_problems([old])


def test_short_release_names_keep_their_full_names() -> None:
    docs = render("default")
    assert one(docs, "CronJob", "producer")["metadata"]["name"] == "tomb-tombstone-pipeline-producer"
    assert one(docs, "StatefulSet", "redpanda")["metadata"]["name"] == "tomb-tombstone-pipeline-redpanda"
