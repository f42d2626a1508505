"""Kafka TLS (and mTLS) for every client the chart runs: env, mounted files, Secrets, KEDA."""

from __future__ import annotations

import copy
import posixpath

import pytest
import yaml

from tests.chart.manifests import (
    RenderError,
    Workload,
    env_of,
    find,
    main_container,
    one,
    render,
    schema_problems,
    workload,
)
from tests.chart.test_render import SCHEMA_VERSIONS
from tests.chart.test_wiring import known_env, pipeline_containers

EXTERNAL = ["redpanda.enabled=false", "kafka.bootstrapServers=broker-1.example:9093"]
SASL = ["kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=pipeline",
        "kafka.sasl.existingSecret=kafka-creds"]
MTLS = [*EXTERNAL, *SASL, "kafka.securityProtocol=SASL_SSL",
        "kafka.tls.ca.existingSecret=kafka-ca", "kafka.tls.ca.key=bundle.pem",
        "kafka.tls.clientCert.existingSecret=kafka-client", "kafka.tls.clientCert.keyPasswordKey=pass",
        "console.enabled=false"]
PEM_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
TLS_ENV = {"KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION",
           "KAFKA_SSL_KEY_PASSWORD", "KAFKA_SSL_ENDPOINT_IDENTIFICATION"}


def file_source(work: Workload, container: dict, path: str) -> tuple[str, str]:
    """The Secret and key a file in a container comes from, through its mount and volume;
    AssertionError when the path is not on a read-only Secret mount."""
    directory, name = posixpath.split(path)
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == directory]
    assert mounts, f"{work} {container['name']}: nothing mounted at {directory}"
    assert mounts[0].get("readOnly") is True, f"{work} {container['name']}: {directory} is writable"
    volume = next(v for v in work.spec["volumes"] if v["name"] == mounts[0]["name"])
    secret = volume["secret"]
    item = [i for i in secret.get("items", []) if i["path"] == name]
    assert item, f"{work}: volume {volume['name']} has no {name}"
    return secret["secretName"], item[0]["key"]


def kafka_clients(docs) -> list[tuple[Workload, dict]]:
    """Every container that talks to Kafka: the pipeline's commands (init containers too)."""
    return [(w, c) for w, c, _ in pipeline_containers(docs)]


def test_mtls_and_sasl_reach_every_client_from_the_secrets() -> None:
    docs = render("default", sets=MTLS)
    clients = kafka_clients(docs)
    assert {(w.component, c["name"]) for w, c in clients} == {
        ("processor", "processor"), ("processor", "topics"), ("producer", "producer"),
        ("topic-init", "topic-init"), ("helm-test", "roundtrip"),
    }
    for w, c in clients:
        env = env_of(c)
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert file_source(w, c, env["KAFKA_SSL_CA_LOCATION"]["value"]) == ("kafka-ca", "bundle.pem")
        assert file_source(w, c, env["KAFKA_SSL_CERTIFICATE_LOCATION"]["value"]) == ("kafka-client", "tls.crt")
        assert file_source(w, c, env["KAFKA_SSL_KEY_LOCATION"]["value"]) == ("kafka-client", "tls.key")
        assert env["KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-client", "key": "pass"}
        assert env["KAFKA_SSL_ENDPOINT_IDENTIFICATION"]["value"] == "https"
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-creds", "key": "password"}
    assert not schema_problems(docs, SCHEMA_VERSIONS[-1])


def test_the_file_check_catches_a_missing_mount() -> None:
    docs = copy.deepcopy(render("default", sets=MTLS))
    w = workload(docs, "producer")
    c = main_container(w)
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "kafka-tls-ca"]
    with pytest.raises(AssertionError, match="nothing mounted"):
        file_source(w, c, env_of(c)["KAFKA_SSL_CA_LOCATION"]["value"])


def test_tls_without_a_ca_or_client_certificate_uses_the_system_trust() -> None:
    docs = render("default", sets=[*EXTERNAL, "kafka.securityProtocol=SSL",
                                   "kafka.tls.endpointIdentification=none"])
    for w, c in kafka_clients(docs):
        env = env_of(c)
        assert env["KAFKA_SSL_ENDPOINT_IDENTIFICATION"]["value"] == "none"
        assert not {"KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SASL_USERNAME"} & set(env)
        assert not [v for v in w.spec["volumes"] if v["name"].startswith("kafka-tls")]


def test_no_tls_by_default() -> None:
    for values in ("default", "external-kafka"):
        docs = render(values)
        for w, c in kafka_clients(docs):
            assert not TLS_ENV & set(env_of(c)), f"{w} {c['name']}"
            assert not [v for v in w.spec["volumes"] if v["name"].startswith("kafka-tls")]


def test_pem_values_become_secrets_the_clients_mount() -> None:
    docs = render("default", sets=[*EXTERNAL, "kafka.securityProtocol=SSL"], )
    assert not find(docs, "Secret", "kafka-tls-ca")
    docs = render("default", sets=[
        *EXTERNAL, "kafka.securityProtocol=SSL", f"kafka.tls.ca.pem={PEM_CA}",
        f"kafka.tls.clientCert.cert={PEM_CA}", f"kafka.tls.clientCert.key={PEM_KEY}",
        "kafka.tls.clientCert.keyPassword=s3cret", "console.enabled=false",
    ])
    ca, client = one(docs, "Secret", "kafka-tls-ca"), one(docs, "Secret", "kafka-tls-client")
    assert set(ca["data"]) == {"ca.crt"} and set(client["data"]) == {"tls.crt", "tls.key", "key-password"}
    w = workload(docs, "processor")
    c = main_container(w)
    env = env_of(c)
    assert file_source(w, c, env["KAFKA_SSL_CA_LOCATION"]["value"]) == (ca["metadata"]["name"], "ca.crt")
    assert file_source(w, c, env["KAFKA_SSL_KEY_LOCATION"]["value"]) == (client["metadata"]["name"], "tls.key")
    assert env["KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": client["metadata"]["name"], "key": "key-password"}


def test_the_console_reads_the_same_files() -> None:
    sets = [s for s in MTLS if "keyPasswordKey" not in s and s != "console.enabled=false"]
    docs = render("default", sets=[*sets, "console.enabled=true"])
    console = yaml.safe_load(one(docs, "ConfigMap", "console")["data"]["console.yaml"])["kafka"]
    assert console["tls"]["enabled"] is True
    w = workload(docs, "console")
    c = main_container(w)
    assert file_source(w, c, console["tls"]["caFilepath"]) == ("kafka-ca", "bundle.pem")
    assert file_source(w, c, console["tls"]["certFilepath"]) == ("kafka-client", "tls.crt")
    assert file_source(w, c, console["tls"]["keyFilepath"]) == ("kafka-client", "tls.key")
    # the login proxy does not talk to Kafka
    docs = render("default", sets=[*sets, "console.enabled=true", "console.auth.enabled=true",
                                   "console.auth.existingSecret=login"])
    proxy = next(c for c in workload(docs, "console").spec["containers"] if c["name"] == "login-proxy")
    assert not [m for m in proxy["volumeMounts"] if m["name"].startswith("kafka-tls")]


@pytest.mark.parametrize("sets, message", [
    (["kafka.securityProtocol=SSL"], "no TLS listener"),
    (["kafka.securityProtocol=SASL_SSL", *SASL], "no SASL listener"),
    ([*EXTERNAL, "kafka.tls.ca.existingSecret=ca"], "does not use TLS"),
    ([*EXTERNAL, "kafka.securityProtocol=SASL_PLAINTEXT", *SASL, "kafka.tls.clientCert.existingSecret=c"],
     "does not use TLS"),
    ([*EXTERNAL, "kafka.securityProtocol=SSL", f"kafka.tls.clientCert.cert={PEM_CA}"], "both cert and key"),
    ([*EXTERNAL, "kafka.securityProtocol=SSL", "kafka.tls.clientCert.existingSecret=c",
      "kafka.tls.clientCert.keyPasswordKey=p", "console.enabled=true"], "Console cannot read"),
    ([*EXTERNAL, "kafka.securityProtocol=SSL", "kafka.tls.ca.pem=not a certificate"], "pem"),
    ([*EXTERNAL, "kafka.securityProtocol=SSL", "kafka.tls.endpointIdentification=off"], "endpointIdentification"),
])
def test_inconsistent_tls_values_fail_to_render(sets, message) -> None:
    with pytest.raises(RenderError, match=message):
        render("default", sets=sets)


def test_the_env_names_are_the_ones_the_clients_read() -> None:
    missing = TLS_ENV - known_env("record-processor")
    assert not missing, f"the settings do not read {sorted(missing)}"


# ---- KEDA ---------------------------------------------------------------------------------------

def test_keda_gets_a_trigger_authentication_from_the_same_secrets() -> None:
    docs = render("keda", sets=MTLS)
    auth = one(docs, "TriggerAuthentication")
    scaled = one(docs, "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "password": ("kafka-creds", "password"), "ca": ("kafka-ca", "bundle.pem"),
        "cert": ("kafka-client", "tls.crt"), "key": ("kafka-client", "tls.key"),
        "keyPassword": ("kafka-client", "pass"),
    }
    # the user name is the processor container's
    (username,) = auth["spec"]["env"]
    processor = workload(docs, "processor")
    container = next(c for c in processor.spec["containers"] if c["name"] == username["containerName"])
    assert env_of(container)[username["name"]]["value"] == "pipeline"
    assert username["parameter"] == "username"
    assert not schema_problems(docs, SCHEMA_VERSIONS[-1])


@pytest.mark.parametrize("mechanism, mode", [("PLAIN", "plaintext"), ("SCRAM-SHA-256", "scram_sha256")])
def test_keda_with_sasl_only(mechanism: str, mode: str) -> None:
    docs = render("keda", sets=[*EXTERNAL, *SASL, "kafka.securityProtocol=SASL_PLAINTEXT",
                                f"kafka.sasl.mechanism={mechanism}"])
    trigger = one(docs, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == mode and "tls" not in trigger["metadata"]
    refs = one(docs, "TriggerAuthentication")["spec"]["secretTargetRef"]
    assert [r["parameter"] for r in refs] == ["password"]


def test_keda_with_tls_on_the_system_trust_needs_no_trigger_authentication() -> None:
    docs = render("keda", sets=[*EXTERNAL, "kafka.securityProtocol=SSL"])
    trigger = one(docs, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"]["tls"] == "enable" and "authenticationRef" not in trigger
    assert not find(docs, "TriggerAuthentication")


def test_an_own_trigger_authentication_replaces_the_charts() -> None:
    docs = render("keda", sets=[*MTLS, "processor.keda.authenticationRef=mine"])
    trigger = one(docs, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["authenticationRef"] == {"name": "mine"}
    # KEDA refuses sasl/tls set both in the trigger and in the TriggerAuthentication
    assert not {"sasl", "tls"} & set(trigger["metadata"])
    assert not find(docs, "TriggerAuthentication")


def test_no_trigger_authentication_without_credentials() -> None:
    docs = render("keda")
    assert not find(docs, "TriggerAuthentication")
    assert "authenticationRef" not in one(docs, "ScaledObject")["spec"]["triggers"][0]
