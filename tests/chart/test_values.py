"""Operator-facing values: an external broker, every image's registry/repository/tag/digest/pull
policy, names for long release names."""

from __future__ import annotations

import copy
import json
import re
import subprocess

import pytest
import yaml

from tests.chart.manifests import (
    NAMESPACE,
    VALUES,
    RenderError,
    component,
    env_of,
    env_values,
    find,
    main_container,
    one,
    pod_template,
    render,
    schema_problems,
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
    "redpanda.image": [("redpanda", "redpanda"), ("redpanda", "production-mode")],
    "console.image": [("console", "console")],
    "console.auth.proxy.image": [("console", "login-proxy")],
    "resonate.image": [("resonate", "resonate")],
    "postgresql.image": [("postgresql", "postgresql"), ("resonate", "wait-for-database")],
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
    for containers in containers_by_image_value(docs).values():
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
        "ghcr.io/resonatehq/resonate:v0.9.8",
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
        assert not schema_problems(docs, version)


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


# ---- placement, metadata, security, extra env per component --------------------------------------

FULL = yaml.safe_load(VALUES["full"][0].read_text())
DEFAULTS = yaml.safe_load(VALUES["default"][0].read_text())
PLACEMENT = ("nodeSelector", "tolerations", "affinity")
# values key of each component
VALUES_KEY = {"redpanda": "redpanda", "console": "console", "jaeger": "jaeger",
              "resonate": "resonate", "processor": "processor", "producer": "producer",
              "topic-init": "topicInit", "helm-test": "tests", "postgresql": "postgresql"}


def test_every_workload_takes_placement_and_pod_metadata() -> None:
    docs = render("full")
    seen = set()
    for w in workloads(docs):
        values = FULL[VALUES_KEY[w.component]]
        seen.add(w.component)
        for field in PLACEMENT:
            assert w.spec[field] == values[field], f"{w}: {field}"
        meta = pod_template(w.manifest)["metadata"]
        assert values["podLabels"].items() <= meta["labels"].items(), str(w)
        assert values["podAnnotations"].items() <= meta["annotations"].items(), str(w)
        for c in w.containers():
            assert c["securityContext"]["seLinuxOptions"] == {"level": "s0:c123,c456"}, str(w)
            # merged over the chart-wide context, not instead of it
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, str(w)
    assert seen == set(VALUES_KEY)


def test_the_chart_labels_win_over_pod_labels() -> None:
    docs = render("default", sets=["processor.podLabels.app\\.kubernetes\\.io/component=other"])
    processor = workload(docs, "processor")
    assert processor.pod_labels["app.kubernetes.io/component"] == "processor"


def test_the_processor_spreads_over_nodes_unless_told_otherwise() -> None:
    default = workload(render("default"), "processor").spec["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in default] == ["kubernetes.io/hostname"]
    full = workload(render("full"), "processor").spec["topologySpreadConstraints"]
    assert full == FULL["processor"]["topologySpreadConstraints"]


def test_no_placement_by_default() -> None:
    for w in workloads(render("default")):
        assert not set(PLACEMENT) & set(w.spec), str(w)


def test_redpanda_runs_as_its_image_user_from_values_and_it_can_change() -> None:
    pod = workload(render("default"), "redpanda").spec["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (101, 101, 101)
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    changed = render("default", sets=["json:redpanda.podSecurityContext={\"runAsUser\": 1000}"])
    pod = workload(changed, "redpanda").spec["securityContext"]
    assert pod["runAsUser"] == 1000 and pod["runAsGroup"] == 101  # helm merges values maps
    assert workload(changed, "processor").spec["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("component, key", [
    ("producer", "producer"), ("topic-init", "topicInit"), ("helm-test", "tests"),
    ("redpanda", "redpanda"), ("resonate", "resonate"),
])
def test_extra_env_reaches_the_component(component: str, key: str) -> None:
    docs = render("default", sets=[f"json:{key}.extraEnv=[{{\"name\": \"LOG_LEVEL_X\", \"value\": \"y\"}}]"])
    env = env_of(workload(docs, component).spec["containers"][0])
    assert env["LOG_LEVEL_X"]["value"] == "y"
    if key == "topicInit":  # the processor's init container runs the same command
        init = workload(docs, "processor").spec["initContainers"][0]
        assert env_of(init)["LOG_LEVEL_X"]["value"] == "y"


def test_extra_env_reaches_the_console_and_jaeger() -> None:
    docs = render("full")
    for comp in ("console", "jaeger"):
        assert env_of(workload(docs, comp).spec["containers"][0])["EXAMPLE_EXTRA"]["value"] == "1"


# ---- service account ------------------------------------------------------------------------------

@pytest.mark.parametrize("values", list(VALUES))
def test_every_pod_uses_the_service_account_without_a_token(values: str) -> None:
    docs = render(values)
    account = one(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for w in workloads(docs):
        assert w.spec["serviceAccountName"] == account["metadata"]["name"], str(w)
        assert w.spec["automountServiceAccountToken"] is False, str(w)


def test_an_existing_service_account() -> None:
    docs = render("default", sets=["serviceAccount.create=false", "serviceAccount.name=pipeline"])
    assert not find(docs, "ServiceAccount")
    assert {w.spec["serviceAccountName"] for w in workloads(docs)} == {"pipeline"}


# ---- Redpanda, Console ----------------------------------------------------------------------------

def probe_verdict(command: list[str], body: str) -> int:
    """Run a probe's check (everything after the first pipe) on ``body`` instead of curl's output."""
    assert command[:2] == ["sh", "-c"] and "/v1/status/ready" in command[2], command
    check = command[2].split("|", 1)[1]
    return subprocess.run(["sh", "-c", f"printf '%s' \"$BODY\" | {check}"], env={"BODY": body},
                          timeout=10, check=False).returncode


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe"])
def test_redpanda_is_ready_only_when_its_status_body_says_so(probe: str) -> None:
    container = workload(render("default"), "redpanda").spec["containers"][0]
    command = container[probe]["exec"]["command"]
    assert probe_verdict(command, '{"status":"ready"}') == 0
    assert probe_verdict(command, '{"status": "ready"}') == 0
    assert probe_verdict(command, '{"status":"booting"}') != 0
    assert probe_verdict(command, "") != 0


@pytest.mark.parametrize("values", ["default", "kind"])  # production and developer mode
def test_redpanda_does_not_create_topics_on_first_use(values: str) -> None:
    args = workload(render(values), "redpanda").spec["containers"][0]["args"]
    # rpk reads --set only as two separate arguments, and applies it after the mode's settings
    at = args.index("--set")
    assert args[at + 1] == "redpanda.auto_create_topics_enabled=false"


def test_console_has_a_liveness_probe() -> None:
    console = workload(render("kind"), "console").spec["containers"][0]
    assert console["livenessProbe"]["httpGet"] == {"path": "/admin/health", "port": "http"}


def test_console_login_proxy_liveness_is_nginx_itself() -> None:
    docs = render("full")
    proxy = next(c for c in workload(docs, "console").containers() if c["name"] == "login-proxy")
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    nginx = one(docs, "ConfigMap", "console")["data"]["nginx.conf"]
    livez = next(line for line in nginx.splitlines() if "location = /livez" in line)
    assert "return 200" in livez and "proxy_pass" not in livez and "auth_basic off" in livez


def test_login_proxy_runs_a_maintained_nginx_line() -> None:
    proxy = DEFAULTS["console"]["auth"]["proxy"]["image"]
    line = tuple(int(part) for part in proxy["tag"].split("-")[0].split("."))
    assert line >= (1, 30), proxy["tag"]


# ---- ingress, monitoring, dashboard, KEDA ---------------------------------------------------------

def processor_metric_names() -> set[str]:
    """Every series name the processor exposes on /metrics (from its own collector)."""
    from prometheus_client import generate_latest
    from tombstone_processor.http import StateCollector
    from tombstone_processor.state import ProcessorState

    state = ProcessorState()
    state.intake.lag = {("tombstones", 0): 3}
    state.registry.register(StateCollector(state))
    state.workflows.workflow_seconds.observe(1.0)
    text = generate_latest(state.registry).decode()
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line and line[0] != "#"}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\btombstones_[a-z_]+", expr))


@pytest.mark.parametrize("comp, port", [("jaeger", "ui"), ("console", "http")])
def test_ingress_routes_to_the_ui_service(comp: str, port: str) -> None:
    docs = render("full")
    ingress = one(docs, "Ingress", comp)
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == FULL[comp]["ingress"]["host"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = one(docs, "Service", comp)
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] == port
    assert port in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_no_ingress_for_a_component_that_is_off() -> None:
    docs = render("full", sets=["console.enabled=false", "jaeger.enabled=false"])
    assert not find(docs, "Ingress")


def test_service_monitors_scrape_only_the_metrics_ports_of_the_processor_and_resonate() -> None:
    docs = render("full")
    monitors = {m["metadata"]["name"]: m for m in find(docs, "ServiceMonitor")}
    assert len(monitors) == 2
    scraped = set()
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [s for s in find(docs, "Service") if selector.items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1, f"{monitor['metadata']['name']} selects {len(services)} Services"
        service = services[0]
        ports = {e["port"] for e in monitor["spec"]["endpoints"]}
        assert ports <= {p["name"] for p in service["spec"]["ports"]}
        scraped |= {(component(service), port) for port in ports}
    # the processor serves /metrics on `http`; the Resonate server's `http` is its API
    assert scraped == {("processor", "http"), ("resonate", "metrics")}


def test_the_resonate_service_monitor_is_optional() -> None:
    docs = render("full", sets=["metrics.serviceMonitor.resonate=false"])
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "processor"


def test_alerts_use_metrics_the_processor_exposes_and_select_this_release() -> None:
    rule = one(render("full"), "PrometheusRule")
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {"TombstonesDeadLettered", "TombstonesDeadLetterRefused", "TombstonesConsumerLagHigh"}
    exposed = processor_metric_names()
    for name, r in rules.items():
        used = metric_names(r["expr"])
        assert used and used <= exposed, (name, used - exposed)
        assert 'service="tomb-tombstone-pipeline-processor"' in r["expr"]
        assert 'namespace="pipeline"' in r["expr"]
    dlq = rules["TombstonesDeadLettered"]["expr"]
    assert {"tombstones_dead_lettered_total", "tombstones_invalid_total"} <= metric_names(dlq)
    refused = rules["TombstonesDeadLetterRefused"]
    assert metric_names(refused["expr"]) == {"tombstones_dead_letters_stuck"}
    assert refused["for"] == "2m" and refused["labels"]["severity"] == "critical"
    assert "> 1000" in rules["TombstonesConsumerLagHigh"]["expr"]
    assert 'topic="tombstones"' in rules["TombstonesConsumerLagHigh"]["expr"]


def test_the_metric_check_catches_a_misspelled_metric() -> None:
    assert not metric_names("sum(tombstones_dead_letered_total)") <= processor_metric_names()


def test_grafana_dashboard_shows_what_the_readme_promises() -> None:
    config_map = one(render("full"), "ConfigMap", "metrics")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Pipelines"}
    dashboard = json.loads(config_map["data"]["tombstone-pipeline.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= processor_metric_names(), used - processor_metric_names()
    # throughput, in flight, lag, DLQ, workflow duration
    assert {"tombstones_completed_total", "tombstones_in_flight", "tombstones_consumer_lag",
            "tombstones_dead_lettered_total", "tombstones_invalid_total",
            "tombstones_workflow_duration_seconds_bucket"} <= used
    assert all("__" not in e for e in exprs), "a placeholder was not filled in"
    assert all('service="tomb-tombstone-pipeline-processor"' in e for e in exprs)


def test_monitoring_is_off_by_default() -> None:
    docs = render("default")
    assert not find(docs, "ServiceMonitor") and not find(docs, "PrometheusRule")
    assert not find(docs, "ConfigMap", "metrics") and not find(docs, "ScaledObject")


def test_keda_scales_the_processor_on_lag_of_its_group() -> None:
    docs = render("keda")
    scaled = one(docs, "ScaledObject")
    processor = workload(docs, "processor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == processor.name
    assert "replicas" not in processor.manifest["spec"], "KEDA owns the replica count"
    trigger = scaled["spec"]["triggers"][0]
    env = env_of(processor.spec["containers"][0])
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]["value"]
    assert trigger["metadata"]["consumerGroup"] == env["KAFKA_CONSUMER_GROUP"]["value"]
    assert trigger["metadata"]["topic"] == env["TOPIC_TOMBSTONES"]["value"]
    assert trigger["metadata"]["lagThreshold"] == "50"
    assert not find(docs, "HorizontalPodAutoscaler")
    assert "advanced" not in scaled["spec"], "Kubernetes' own scaling behaviour unless told"


def test_keda_behavior_reaches_the_hpa_keda_makes() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    scaled = one(render("keda", sets=[f"json:processor.keda.behavior={json.dumps(behavior)}"]), "ScaledObject")
    assert scaled["spec"]["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}


def redpanda_args(docs) -> list[str]:
    return main_container(workload(docs, "redpanda"))["args"]


def topic_env(docs) -> dict[str, str]:
    return env_values(main_container(workload(docs, "topic-init")))


def test_one_broker_by_default_with_one_replica_per_partition() -> None:
    docs = render("default")
    assert workload(docs, "redpanda").manifest["spec"]["replicas"] == 1
    assert not any(arg.startswith("--seeds") for arg in redpanda_args(docs))
    assert [p["metadata"]["name"] for p in find(docs, "PodDisruptionBudget")] == [workload(docs, "processor").name]
    env = topic_env(docs)
    assert env["TOPIC_REPLICATION_FACTOR"] == "1" and "TOPIC_MIN_INSYNC_REPLICAS" not in env


def test_three_brokers_form_one_replicated_cluster_spread_over_nodes() -> None:
    docs = render("default", sets=["redpanda.replicas=3"])
    redpanda = workload(docs, "redpanda")
    assert redpanda.manifest["spec"]["replicas"] == 3
    # every broker a seed, by its stable name behind the headless Service
    seeds = next(a for a in redpanda_args(docs) if a.startswith("--seeds=")).removeprefix("--seeds=").split(",")
    assert seeds == [f"{redpanda.name}-{i}.{redpanda.name}.{NAMESPACE}.svc:33145" for i in range(3)]
    assert "redpanda.empty_seed_starts_cluster=false" in redpanda_args(docs)
    selector = redpanda.manifest["spec"]["selector"]["matchLabels"]
    (spread,) = redpanda.spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["labelSelector"]["matchLabels"] == selector
    # a drain takes one broker at a time
    (pdb,) = [p for p in find(docs, "PodDisruptionBudget") if p["spec"]["selector"]["matchLabels"] == selector]
    assert pdb["spec"]["maxUnavailable"] == 1
    # the topics follow: 3 replicas, an acknowledged record on at least 2 of them
    env = topic_env(docs)
    assert (env["TOPIC_REPLICATION_FACTOR"], env["TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")


def test_replication_values_win_over_the_defaults() -> None:
    env = topic_env(render("default", sets=["redpanda.replicas=5", "topics.replicationFactor=5",
                                            "topics.minInsyncReplicas=3"]))
    assert (env["TOPIC_REPLICATION_FACTOR"], env["TOPIC_MIN_INSYNC_REPLICAS"]) == ("5", "3")
    # an external broker: the chart cannot know its size, so the values are taken as they are
    env = topic_env(render("external-kafka", sets=["topics.replicationFactor=3"]))
    assert (env["TOPIC_REPLICATION_FACTOR"], env["TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")


def test_own_spread_constraints_replace_the_brokers_default() -> None:
    own = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
           "labelSelector": {"matchLabels": {"example": "x"}}}
    docs = render("default", sets=["redpanda.replicas=3", f"json:redpanda.topologySpreadConstraints={json.dumps([own])}"])
    assert workload(docs, "redpanda").spec["topologySpreadConstraints"] == [own]


@pytest.mark.parametrize("sets, message", [
    (["topics.replicationFactor=3"], r"topics.replicationFactor \(3\) exceeds redpanda.replicas \(1\)"),
    (["redpanda.replicas=3", "topics.minInsyncReplicas=4"], r"topics.minInsyncReplicas \(4\) exceeds the replication factor \(3\)"),
    (["redpanda.replicas=0"], "replicas"),
])
def test_replication_beyond_the_brokers_fails_to_render(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)
