"""Env wiring, addresses, probes, security and availability settings of the rendered chart."""

from __future__ import annotations

import copy
from urllib.parse import urlparse

import pytest
import yaml
from pydantic import BaseModel

from tests.chart.manifests import (
    NAMESPACE,
    VALUES,
    RenderError,
    Workload,
    env_of,
    env_values,
    find,
    main_container,
    missing_env,
    one,
    render,
    resource_problems,
    security_problems,
    workload,
    workloads,
)
from tombstone_common.settings import PipelineSettings
from tombstone_processor.mode import DURABLE, LOCAL, Mode
from tombstone_processor.settings import ProcessorSettings
from tombstone_topic_init.topics import TopicInitSettings

# Which settings class each pipeline command loads at start (the helm test pod runs a python
# script that loads PipelineSettings).
SETTINGS: dict[str, type[BaseModel]] = {
    "record-processor": ProcessorSettings,
    "record-producer": PipelineSettings,
    "setup-topics": TopicInitSettings,
    "python": PipelineSettings,
}
COMMAND_OF = {"processor": "record-processor", "producer": "record-producer",
              "topic-init": "setup-topics", "helm-test": "python"}
# Set even though the settings have a default: without RESONATE_URL the processor silently
# runs in local (non-durable) mode, which a cluster must never do.
ALSO_REQUIRED = {"record-processor": {"RESONATE_URL"}}
# Variables the chart sets that are not settings fields.
NOT_SETTINGS = {"POD_NAME", "TEST_COUNT", "TEST_TIMEOUT_SECONDS"}


def required_env(command: str) -> set[str]:
    """Fields without a default, as environment names, plus ALSO_REQUIRED."""
    cls = SETTINGS[command]
    required = {name.upper() for name, field in cls.model_fields.items() if field.is_required()}
    return required | ALSO_REQUIRED.get(command, set())


def known_env(command: str) -> set[str]:
    return {name.upper() for name in SETTINGS[command].model_fields} | NOT_SETTINGS


def pipeline_containers(docs) -> list[tuple[Workload, dict, str]]:
    """Every container (init containers too) that runs one of the pipeline's commands."""
    found = []
    for w in workloads(docs):
        for c in w.containers():
            command = (c.get("args") or c.get("command") or [""])[0]
            if command in SETTINGS:
                found.append((w, c, command))
    return found


def pipeline_workloads(docs) -> list[Workload]:
    return [w for w in workloads(docs) if w.component in COMMAND_OF]


@pytest.fixture(params=list(VALUES))
def docs(request):
    return render(request.param)


# ---- env --------------------------------------------------------------------------------------

def test_required_lists_are_derived_from_the_settings() -> None:
    assert "KAFKA_BOOTSTRAP_SERVERS" in required_env("record-producer")
    assert {"KAFKA_BOOTSTRAP_SERVERS", "RESONATE_URL"} <= required_env("record-processor")


def test_every_pipeline_command_is_rendered(docs) -> None:
    assert {w.component for w in pipeline_workloads(docs)} == set(COMMAND_OF)
    assert {command for _, _, command in pipeline_containers(docs)} == set(SETTINGS)
    for w in pipeline_workloads(docs):
        assert (main_container(w).get("args") or [""])[0] == COMMAND_OF[w.component], str(w)


def test_every_required_variable_is_set(docs) -> None:
    problems = [
        f"{w} container {c['name']} ({command}): missing {sorted(missing)}"
        for w, c, command in pipeline_containers(docs)
        if (missing := missing_env(c, required_env(command)))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("component", list(COMMAND_OF))
def test_the_check_catches_a_removed_required_variable(component: str) -> None:
    docs = copy.deepcopy(render("kind"))
    container = main_container(workload(docs, component))
    required = required_env(COMMAND_OF[component])
    for name in sorted(required):
        assert not missing_env(container, required)
        removed = [e for e in container["env"] if e["name"] == name]
        assert removed, f"{component} does not set {name}"
        container["env"] = [e for e in container["env"] if e["name"] != name]
        assert missing_env(container, required) == {name}
        container["env"] += removed


def test_the_check_catches_an_emptied_variable() -> None:
    docs = copy.deepcopy(render("default"))
    container = main_container(workload(docs, "processor"))
    env_of(container)["KAFKA_BOOTSTRAP_SERVERS"]["value"] = ""
    assert "KAFKA_BOOTSTRAP_SERVERS" in missing_env(container, required_env("record-processor"))


def test_no_misspelled_variables(docs) -> None:
    """Every variable a pipeline container gets is one its command reads (or OTEL_*)."""
    problems = []
    for w, c, command in pipeline_containers(docs):
        for name in env_of(c):
            if not name.startswith("OTEL_") and name not in known_env(command):
                problems.append(f"{w} container {c['name']}: {command} does not read {name}")
    assert not problems, "\n".join(problems)


def test_processor_gets_its_operational_settings() -> None:
    env = env_of(main_container(workload(render("default"), "processor")))
    for name in (
        "KAFKA_CONSUMER_GROUP", "PROCESSOR_MAX_IN_FLIGHT", "PROCESSOR_SHUTDOWN_GRACE_SECONDS",
        "PROCESSOR_HTTP_PORT", "RESONATE_TTL_SECONDS", "TOPIC_TOMBSTONES", "TOPIC_PROCESSED",
        "TOPIC_DLQ", "DELETE_ERROR_RATE", "DELETE_BATCH_INTERVAL_SECONDS",
    ):
        assert name in env, name
    assert env["PROCESSOR_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_topic_init_gets_its_settings() -> None:
    docs = render("default")
    env = env_of(main_container(workload(docs, "topic-init")))
    assert {"TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR", "BROKER_WAIT_SECONDS"} <= set(env)
    # The processor's init container creates/checks the same topics the same way.
    init = workload(docs, "processor").spec["initContainers"][0]
    assert init["args"] == ["setup-topics"]
    for name in ("TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR", "KAFKA_BOOTSTRAP_SERVERS"):
        assert env_of(init)[name] == env[name]


def test_rendered_env_is_valid_configuration(docs, monkeypatch) -> None:
    """Each command's settings class accepts exactly the env the chart gives it."""
    for w, c, command in pipeline_containers(docs):
        with monkeypatch.context() as m:
            for name in known_env(command) | set(env_of(c)):
                m.delenv(name, raising=False)
            for name, value in env_values(c).items():
                m.setenv(name, value)
            settings = SETTINGS[command](_env_file=None)
            if command == "record-processor":
                assert Mode.of(settings) is DURABLE, "processor would run in local mode"


def test_topics_are_the_same_everywhere(docs) -> None:
    seen = {
        f"{w}/{c['name']}": tuple(env_of(c)[n]["value"]
                                  for n in ("TOPIC_TOMBSTONES", "TOPIC_PROCESSED", "TOPIC_DLQ"))
        for w, c, _ in pipeline_containers(docs)
    }
    assert len(set(seen.values())) == 1, seen


def test_sasl_settings_reach_every_client_and_the_password_comes_from_a_secret() -> None:
    docs = render("default", sets=[
        "redpanda.enabled=false", "kafka.bootstrapServers=broker-1.example:9093",
        "kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=SCRAM-SHA-512",
        "kafka.sasl.username=pipeline", "kafka.sasl.existingSecret=kafka-creds",
    ])
    assert not find(docs, "StatefulSet")
    for w, c, _ in pipeline_containers(docs):
        env = env_of(c)
        assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "broker-1.example:9093"
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["KAFKA_SASL_USERNAME"]["value"] == "pipeline"
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "kafka-creds", "key": "password"}


def test_sasl_password_from_values_becomes_a_secret() -> None:
    docs = render("default", sets=[
        "redpanda.enabled=false", "kafka.bootstrapServers=b:9092",
        "kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.mechanism=PLAIN",
        "kafka.sasl.username=u", "kafka.sasl.password=s3cret",
    ])
    secret = one(docs, "Secret", "kafka-sasl")
    ref = env_of(main_container(workload(docs, "producer")))["KAFKA_SASL_PASSWORD"]
    assert ref["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "password" in secret["data"]


@pytest.mark.parametrize("sets, message", [
    (["kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN", "kafka.sasl.username=u",
      "kafka.sasl.password=p"], "external broker"),
    (["resonate.enabled=false"], "resonate.url is required"),
    (["resonate.auth.enabled=true"], "existingSecret"),
    (["redpanda.enabled=false"], "kafka.bootstrapServers is required"),
    # values the schema rejects
    (["resonate.image.digest=latest"], "digest"),
    (["images.processor.pullPolicy=Sometimes"], "pullPolicy"),
    (["global.imagePullPolicy=Sometimes"], "imagePullPolicy"),
    (["jaeger.image.tag="], "tag"),
    (["metrics.prometheusRule.lag.for=ten minutes"], "for"),
    # scaling
    (["processor.keda.enabled=true", "processor.autoscaling.enabled=true"], "turn one off"),
])
def test_inconsistent_values_fail_to_render(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)


def test_local_mode_is_an_explicit_choice_that_leaves_resonate_url_unset(monkeypatch) -> None:
    docs = render("default", sets=["resonate.enabled=false", "resonate.localMode=true"])
    assert not [d for d in docs if d["metadata"]["name"].endswith("-resonate")]
    processor = main_container(workload(docs, "processor"))
    assert "RESONATE_URL" not in env_of(processor)
    for name, value in env_values(processor).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RESONATE_URL", raising=False)
    assert Mode.of(SETTINGS["record-processor"](_env_file=None)) is LOCAL


def test_resonate_token_comes_from_the_auth_secret() -> None:
    docs = render("full")
    env = env_of(main_container(workload(docs, "processor")))
    assert env["RESONATE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "tombstone-resonate-auth", "key": "token",
    }
    server = main_container(workload(docs, "resonate"))
    assert "--auth-publickey=/etc/resonate/auth/public.pem" in server["args"]


# ---- addresses --------------------------------------------------------------------------------

def service_port(docs, host: str, port: int) -> tuple[dict, dict]:
    """The Service that ``host`` names (``svc`` or ``svc.ns.svc``) and its port ``port``."""
    name, _, rest = host.partition(".")
    assert rest in ("", f"{NAMESPACE}.svc", f"{NAMESPACE}.svc.cluster.local"), host
    services = [d for d in find(docs, "Service") if d["metadata"]["name"] == name]
    assert services, f"no Service {name} for {host}"
    ports = [p for p in services[0]["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {name} has no port {port}"
    return services[0], ports[0]


def backing_container_port(docs, service: dict, port: dict) -> int:
    """The containerPort behind a Service port (targetPort by name)."""
    selector = service["spec"]["selector"]
    for w in workloads(docs):
        if selector.items() <= w.pod_labels.items():
            for c in w.containers():
                for p in c.get("ports", []):
                    if p.get("name") == port["targetPort"]:
                        return p["containerPort"]
    target, name = port["targetPort"], service["metadata"]["name"]
    raise AssertionError(f"no container port {target} behind {name}")


@pytest.mark.parametrize("values", [v for v in VALUES if v != "external-kafka" and not v.startswith("cluster")])
def test_bootstrap_servers_point_at_the_redpanda_service(values: str) -> None:
    docs = render(values)
    redpanda = workload(docs, "redpanda")
    for w, c, _ in pipeline_containers(docs):
        servers = env_of(c)["KAFKA_BOOTSTRAP_SERVERS"]["value"]
        host, _, port = servers.rpartition(":")
        service, svc_port = service_port(docs, host, int(port))
        assert svc_port["name"] == "kafka"
        assert service["metadata"]["name"] == redpanda.manifest["spec"]["serviceName"]
        assert backing_container_port(docs, service, svc_port) == int(port)
    # The broker advertises itself under the same headless Service.
    args = main_container(redpanda)["args"]
    advertised = next(a for a in args if a.startswith("--advertise-kafka-addr="))
    assert f".{redpanda.manifest['spec']['serviceName']}.{NAMESPACE}.svc:" in advertised


def test_resonate_url_points_at_the_resonate_service(docs) -> None:
    url = env_of(main_container(workload(docs, "processor")))["RESONATE_URL"]["value"]
    parsed = urlparse(url)
    service, svc_port = service_port(docs, parsed.hostname, parsed.port)
    assert svc_port["name"] == "http"
    assert backing_container_port(docs, service, svc_port) == parsed.port
    server_args = main_container(workload(docs, "resonate"))["args"]
    assert f"--server-url={url}" in server_args


def test_otel_endpoint_points_at_jaeger_when_it_is_on() -> None:
    docs = render("kind")
    for w, c, _ in pipeline_containers(docs):
        env = env_of(c)
        parsed = urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"])
        service, svc_port = service_port(docs, parsed.hostname, parsed.port)
        assert svc_port["name"] == "otlp-http" and parsed.port == 4318
        assert backing_container_port(docs, service, svc_port) == 4318
        assert env["OTEL_SERVICE_NAME"]["value"].startswith(w.component)


def test_tracing_is_off_without_an_endpoint() -> None:
    for w, c, _ in pipeline_containers(render("default")):
        env = env_of(c)
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
        assert env["OTEL_TRACES_EXPORTER"]["value"] == "none"


def test_console_reads_the_same_broker() -> None:
    docs = render("kind")
    config = yaml.safe_load(one(docs, "ConfigMap", "console")["data"]["console.yaml"])
    processor_env = env_of(main_container(workload(docs, "processor")))
    assert config["kafka"]["brokers"] == [processor_env["KAFKA_BOOTSTRAP_SERVERS"]["value"]]


# ---- probes -----------------------------------------------------------------------------------

def probe_target(container: dict, probe: str) -> tuple[str, str | int]:
    action = container[probe]["httpGet"]
    return action["path"], action["port"]


def test_the_console_restarts_when_its_rendered_config_changes() -> None:
    def checksum(*sets: str) -> str:
        deployment = one(render("kind", sets=sets), "Deployment", "console")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum() != checksum("redpanda.kafkaPort=9093"), "broker address is in the console config"



def test_processor_probes_hit_its_health_endpoints_on_the_http_port(docs) -> None:
    container = main_container(workload(docs, "processor"))
    assert probe_target(container, "livenessProbe") == ("/healthz", "http")
    assert probe_target(container, "readinessProbe") == ("/readyz", "http")
    http = next(p for p in container["ports"] if p["name"] == "http")
    assert str(http["containerPort"]) == env_of(container)["PROCESSOR_HTTP_PORT"]["value"]


def test_processor_port_follows_the_value() -> None:
    docs = render("default", sets=["processor.httpPort=9100"])
    container = main_container(workload(docs, "processor"))
    assert env_of(container)["PROCESSOR_HTTP_PORT"]["value"] == "9100"
    assert container["ports"][0]["containerPort"] == 9100


def test_resonate_probes_hit_health_and_ready(docs) -> None:
    container = main_container(workload(docs, "resonate"))
    assert probe_target(container, "livenessProbe") == ("/health", "http")
    assert probe_target(container, "readinessProbe") == ("/ready", "http")


def test_every_long_running_pod_has_a_readiness_probe(docs) -> None:
    for w in workloads(docs):
        if w.kind in ("Deployment", "StatefulSet"):
            assert any("readinessProbe" in c for c in w.containers()), str(w)


def test_console_login_proxy_guards_the_console() -> None:
    docs = render("full")
    console = workload(docs, "console")
    proxy = next(c for c in console.containers() if c["name"] == "login-proxy")
    assert probe_target(proxy, "readinessProbe") == ("/healthz", "http")
    service = one(docs, "Service", "console")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert {p["name"] for p in proxy["ports"]} == {"http"}
    assert all(p["name"] != "http" for c in console.containers() if c["name"] == "console"
               for p in c["ports"])
    config = one(docs, "ConfigMap", "console")["data"]
    assert "listenAddress: 127.0.0.1" in config["console.yaml"]
    assert "auth_basic_user_file" in config["nginx.conf"]
    volumes = {v["name"]: v for v in console.spec["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "tombstone-console-login"


# ---- security, resources ----------------------------------------------------------------------

def test_every_pod_and_container_is_locked_down(docs) -> None:
    problems = [p for w in workloads(docs) for p in security_problems(w)]
    assert not problems, "\n".join(problems)


def test_the_security_check_catches_a_writable_root() -> None:
    w = copy.deepcopy(workload(render("default"), "processor"))
    assert not security_problems(w)
    main_container(w)["securityContext"]["readOnlyRootFilesystem"] = False
    del w.spec["securityContext"]["runAsNonRoot"]
    assert len(security_problems(w)) == 2


def test_every_container_has_requests_and_a_memory_limit(docs) -> None:
    problems = [p for w in workloads(docs) for p in resource_problems(w)]
    assert not problems, "\n".join(problems)


def test_the_resource_check_catches_a_missing_limit() -> None:
    w = copy.deepcopy(workload(render("default"), "producer"))
    del main_container(w)["resources"]["limits"]
    assert resource_problems(w) == [f"{w} container producer: no memory limit"]


def test_every_image_has_a_pinned_tag_or_digest(docs) -> None:
    for w in workloads(docs):
        for c in w.containers():
            name, at, digest = c["image"].partition("@")
            repository, _, tag = name.rpartition(":")
            pinned = digest.startswith("sha256:") if at else tag not in ("", "latest")
            assert repository and "/" not in tag and pinned, c["image"]


def test_no_pod_gets_service_links(docs) -> None:
    """Service env links (RESONATE_PORT=tcp://…) would leak into RESONATE_* configuration."""
    for w in workloads(docs):
        assert w.spec.get("enableServiceLinks") is False, str(w)


# ---- availability -----------------------------------------------------------------------------

@pytest.mark.parametrize("replicas, expected", [(1, 0), (2, 1), (5, 1)])
def test_pdb_only_when_more_than_one_processor(replicas: int, expected: int) -> None:
    docs = render("default", sets=[f"processor.replicas={replicas}"])
    pdbs = find(docs, "PodDisruptionBudget")
    assert len(pdbs) == expected
    if pdbs:
        processor = workload(docs, "processor")
        selector = processor.manifest["spec"]["selector"]["matchLabels"]
        assert pdbs[0]["spec"]["selector"]["matchLabels"] == selector


def test_pdb_follows_the_autoscaler_minimum() -> None:
    base = ["processor.autoscaling.enabled=true", "processor.replicas=1"]
    assert not find(render("default", sets=[*base, "processor.autoscaling.minReplicas=1"]),
                    "PodDisruptionBudget")
    docs = render("default", sets=[*base, "processor.autoscaling.minReplicas=2"])
    assert find(docs, "PodDisruptionBudget")
    assert "replicas" not in workload(docs, "processor").manifest["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == workload(docs, "processor").name


def test_autoscaler_behavior_is_passed_through() -> None:
    base = ["processor.autoscaling.enabled=true"]
    assert "behavior" not in one(render("default", sets=base), "HorizontalPodAutoscaler")["spec"]
    docs = render("default", sets=[*base, "processor.autoscaling.behavior.scaleDown.stabilizationWindowSeconds=30"])
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}


@pytest.mark.parametrize("grace", ["20", "45.5", "1", "120"])
def test_termination_grace_exceeds_the_drain(grace: str) -> None:
    docs = render("default", sets=[f"json:processor.shutdownGraceSeconds={grace}"])
    processor = workload(docs, "processor")
    drain = float(env_of(main_container(processor))["PROCESSOR_SHUTDOWN_GRACE_SECONDS"]["value"])
    assert drain == float(grace)
    assert processor.spec["terminationGracePeriodSeconds"] > drain


def test_resonate_runs_alone() -> None:
    deployment = workload(render("default"), "resonate").manifest
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_topic_init_is_a_hook_that_reruns_on_upgrade() -> None:
    job = workload(render("default"), "topic-init").manifest
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert {"post-install", "post-upgrade"} <= set(hooks)
    assert main_container(workload(render("default"), "topic-init"))["args"] == ["setup-topics"]


def test_producer_cronjob_runs_record_producer_with_the_count() -> None:
    docs = render("default", sets=["producer.count=7", "producer.schedule=*/3 * * * *"])
    cronjob = one(docs, "CronJob", "producer")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "*/3 * * * *"
    assert main_container(workload(docs, "producer"))["args"] == ["record-producer", "-n", "7"]


# ---- network policies -------------------------------------------------------------------------

def allowed_components(policy: dict) -> set[str]:
    allowed = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule.get("from", []):
            if "namespaceSelector" in peer:  # other namespaces (KEDA, Prometheus): see their tests
                continue
            selector = peer["podSelector"]
            if c := selector.get("matchLabels", {}).get("app.kubernetes.io/component"):
                allowed.add(c)
            for expr in selector.get("matchExpressions", []):
                if expr["key"] == "app.kubernetes.io/component":
                    allowed.update(expr["values"])
    return allowed


def test_only_pipeline_clients_reach_the_broker_and_only_the_processor_reaches_resonate() -> None:
    docs = render("full")
    broker = one(docs, "NetworkPolicy", "redpanda")
    clients = {w.component for w, c, _ in pipeline_containers(docs)
               if "KAFKA_BOOTSTRAP_SERVERS" in env_of(c)}
    assert clients <= allowed_components(broker)
    assert allowed_components(broker) <= clients | {"console", "redpanda"}
    resonate = one(docs, "NetworkPolicy", "resonate")
    api_rules = [r for r in resonate["spec"]["ingress"] if {"port": "http"} in r.get("ports", [])]
    assert len(api_rules) == 1
    assert allowed_components({"spec": {"ingress": api_rules}}) == {"processor"}


def test_helm_test_script_compiles_and_uses_the_rendered_env() -> None:
    docs = render("default")
    script = one(docs, "ConfigMap", "helm-test")["data"]["roundtrip.py"]
    compile(script, "roundtrip.py", "exec")
    pod = workload(docs, "helm-test")
    assert pod.manifest["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = env_of(main_container(pod))
    for name in ("TEST_COUNT", "TEST_TIMEOUT_SECONDS"):
        assert f'os.environ["{name}"]' in script and name in env
    assert pod.spec["activeDeadlineSeconds"] > int(env["TEST_TIMEOUT_SECONDS"]["value"])


def namespace_rules(policy: dict) -> list[tuple[dict, set[str]]]:
    """(namespace selector, ports) of each rule that admits another namespace."""
    return [
        (peer["namespaceSelector"], {p["port"] for p in rule["ports"]})
        for rule in policy["spec"]["ingress"] for peer in rule.get("from", []) if "namespaceSelector" in peer
    ]


def test_the_broker_admits_kedas_namespace_only_when_keda_scales_the_processor() -> None:
    keda = ["networkPolicy.enabled=true", "processor.keda.enabled=true"]
    broker = one(render("default", sets=keda), "NetworkPolicy", "redpanda")
    assert namespace_rules(broker) == [({"matchLabels": {"kubernetes.io/metadata.name": "keda"}}, {"kafka"})]
    custom = one(render("default", sets=keda + ["networkPolicy.kedaNamespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=autoscaling"]),
                 "NetworkPolicy", "redpanda")
    assert namespace_rules(custom) == [({"matchLabels": {"kubernetes.io/metadata.name": "autoscaling"}}, {"kafka"})]
    without = one(render("default", sets=["networkPolicy.enabled=true"]), "NetworkPolicy", "redpanda")
    assert namespace_rules(without) == []


def test_the_broker_admits_prometheus_on_its_admin_port_when_monitoring_is_on() -> None:
    broker = one(render("full"), "NetworkPolicy", "redpanda")
    assert namespace_rules(broker) == [({"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}, {"admin"})]
