"""The chart with every connection secured, on the real cluster: the broker stand-in requires
mutual TLS from its clients (a CA and certificates the test makes), and, with a Resonate server
image, the server requires a JWT. The chart's clients (the topics init container, the processor,
the topic-init Job, the `helm test` pod) get the CA, their certificate and the token from
Secrets, and a round trip goes through (docs/kubernetes.md, "TLS to the broker")."""

from __future__ import annotations

import base64
import uuid

import pytest
import yaml

from tests.cluster.kube import (
    CLUSTER_CONFIG,
    RELEASE,
    durable,
    install,
    namespace_with_broker,
    pod_ready,
    processors,
)
from tests.support.jwt import TokenIssuer
from tests.support.processes import the_error_line
from tests.support.tls import CertificateAuthority

pytestmark = pytest.mark.cluster

#: The pipeline's clients on mutual TLS, their CA, certificate and key from the Secret the test
#: creates (as --set flags: the chart tests render every values file under tests/cluster).
SECURED = (
    "kafka.securityProtocol=SSL",
    "kafka.tls.ca.existingSecret=kafka-client-tls",
    "kafka.tls.ca.key=ca.crt",
    "kafka.tls.clientCert.existingSecret=kafka-client-tls",
    "kafka.tls.clientCert.certKey=tls.crt",
    "kafka.tls.clientCert.keyKey=tls.key",
)
BROKER_TLS_DIR = "/etc/kafka-broker-tls"


def secret(name: str, files: dict[str, bytes]) -> dict:
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def tls_broker(broker_tls: dict) -> list[dict]:
    """k8s/cluster/kafka.yaml, its broker reading its certificate from the Secret ``broker_tls``."""
    documents = list(yaml.safe_load_all((CLUSTER_CONFIG / "kafka.yaml").read_text()))
    (statefulset,) = [d for d in documents if d["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    container["env"].append({"name": "KAFKA_TLS_DIR", "value": BROKER_TLS_DIR})
    container["volumeMounts"].append({"name": "tls", "mountPath": BROKER_TLS_DIR, "readOnly": True})
    pod.setdefault("volumes", []).append({"name": "tls", "secret": {"secretName": broker_tls["metadata"]["name"]}})
    return [broker_tls, *documents]


def test_the_charts_clients_over_mutual_tls_and_with_a_token(tmp_path):
    namespace = f"secured-{uuid.uuid4().hex[:6]}"
    broker_host = f"kafka.{namespace}.svc.cluster.local"
    authority = CertificateAuthority.create(tmp_path / "tls", "cluster")
    server = authority.server("kafka", dns_names=(broker_host,))
    client = authority.client("pipeline")
    ca = authority.bundle.read_bytes()
    broker_tls = secret("kafka-broker-tls", {
        "ca.crt": ca, "tls.crt": server.certificate.read_bytes(), "tls.key": server.key.read_bytes(),
    })
    client_tls = secret("kafka-client-tls", {
        "ca.crt": ca, "tls.crt": client.certificate.read_bytes(), "tls.key": client.key.read_bytes(),
    })
    extra = ["--set", f"kafka.bootstrapServers={broker_host}:9092"]
    for setting in SECURED:
        extra += ["--set", setting]
    documents = [client_tls, *tls_broker(broker_tls)]
    issuer = None
    if durable():
        issuer = TokenIssuer.new(tmp_path / "jwt")
        documents.append(secret("resonate-jwt", {
            "public.pem": issuer.public_key_file.read_bytes(), "token": issuer.token(role="admin").encode(),
        }))
        extra += ["--set", "resonate.auth.enabled=true", "--set", "resonate.auth.existingSecret=resonate-jwt"]

    with namespace_with_broker("secured", documents, namespace=namespace) as kube:
        seconds = install(kube, extra=tuple(extra))
        print(f"helm install --wait over mutual TLS{' and JWT' if issuer else ''}: {seconds:.0f}s")
        print(kube.helm("test", RELEASE, "--logs", "--timeout", "5m"))

        (pod,) = [p for p in processors(kube) if pod_ready(p)]
        (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "processor"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SSL"
        assert env["KAFKA_SSL_CERTIFICATE_LOCATION"]["value"].startswith("/etc/kafka-tls")
        if issuer is not None:
            assert env["RESONATE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "resonate-jwt"

        # The broker requires the client certificate: without it, one line and exit 2.
        refused = kube.run("kubectl", "exec", pod["metadata"]["name"], "-c", "processor", "--", "env",
                           "-u", "KAFKA_SSL_CERTIFICATE_LOCATION", "-u", "KAFKA_SSL_KEY_LOCATION",
                           "record-admin", "dlq", "list", timeout=120, check=False)
        print(refused.stderr)
        assert refused.returncode == 2, refused.stderr
        assert the_error_line(refused.stderr, last=False).startswith("error: kafka:"), refused.stderr

        if issuer is not None:
            # The server requires the token: a processor with a wrong one stops at its start
            # check, with one line and exit 2 (it joins no consumer group before that check).
            wrong = kube.run("kubectl", "exec", pod["metadata"]["name"], "-c", "processor", "--", "env",
                             f"RESONATE_TOKEN={TokenIssuer.new(tmp_path / 'other').token(role='admin')}",
                             "PROCESSOR_HTTP_PORT=0", "record-processor", timeout=120, check=False)
            print(wrong.stderr[-2000:])
            assert wrong.returncode == 2, wrong.stderr[-2000:]
            line = the_error_line(wrong.stderr, last=False)
            assert line.startswith("error: the Resonate server at") and "token" in line, wrong.stderr[-2000:]

