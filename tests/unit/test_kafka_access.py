"""Which librdkafka errors mean "the broker refuses this client" (the texts are librdkafka's, as
the integration tier's broker produces them), and the one line each becomes."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from tests.support.tls import CertificateAuthority
from tombstone_common.kafka import ClientErrors, KafkaAccessError, create_client, refusal

WRONG_CA = (
    KafkaError._SSL,
    "ssl://127.0.0.1:32845/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate "
    "verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly "
    "configured or root CA certificates are installed (install ca-certificates package) (after 10ms in "
    "state SSL_HANDSHAKE)",
)
WRONG_CA_AS_TRANSPORT = (
    KafkaError._TRANSPORT,
    "ssl://127.0.0.1:32845/bootstrap: error:0A000086:SSL routines::certificate verify failed "
    "(after 4ms in state SSL_HANDSHAKE)",
)
NO_CLIENT_CERTIFICATE = (
    KafkaError._TRANSPORT,
    "ssl://127.0.0.1:53737/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad "
    "certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)",
)
EXPIRED_CLIENT_CERTIFICATE = (
    KafkaError._TRANSPORT,
    "ssl://127.0.0.1:53737/bootstrap: Receive failed: error:0A000416:SSL routines::ssl/tls alert "
    "certificate unknown: SSL alert number 46 (after 6ms in state APIVERSION_QUERY)",
)
WRONG_PASSWORD = (
    KafkaError._AUTHENTICATION,
    "sasl_ssl://127.0.0.1:55519/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in state "
    "AUTH_REQ)",
)


def test_an_untrusted_broker_certificate_is_a_refusal_naming_the_ca_variable():
    for code, text in (WRONG_CA, WRONG_CA_AS_TRANSPORT):
        line = refusal(KafkaError(code, text))
        assert line.startswith("kafka: TLS handshake with 127.0.0.1:32845 failed: certificate verify failed")
        assert "KAFKA_SSL_CA_LOCATION" in line and "ssl.ca.location" not in line and "after" not in line


@pytest.mark.parametrize(("error", "alert"), [(NO_CLIENT_CERTIFICATE, "bad certificate"), (EXPIRED_CLIENT_CERTIFICATE, "certificate unknown")])
def test_a_refused_client_certificate_is_a_refusal_naming_the_certificate_variables(error, alert):
    line = refusal(KafkaError(*error))
    assert line.startswith(
        f'kafka: TLS handshake with 127.0.0.1:53737 failed: the broker refused the client certificate (TLS alert "{alert}")'
    )
    assert "KAFKA_SSL_CERTIFICATE_LOCATION" in line and "SSL alert number" not in line


def test_failed_sasl_authentication_is_a_refusal_naming_the_sasl_variables():
    assert refusal(KafkaError(*WRONG_PASSWORD)) == (
        "kafka: SASL authentication with 127.0.0.1:55519 failed: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
        "(check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)"
    )


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "ssl://127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state CONNECT)"),
        (KafkaError._TRANSPORT, "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener? (after 2ms in state SSL_HANDSHAKE)"),
        (KafkaError._SSL, "ssl://127.0.0.1:9093/1: SSL handshake failed: error:0A000126:SSL routines::unexpected eof while reading (after 3ms in state SSL_HANDSHAKE)"),
        (KafkaError._TRANSPORT, "ssl://127.0.0.1:9093/1: Receive failed: error:0A000412:SSL routines::ssl/tls alert close notify"),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
        (KafkaError._TIMED_OUT, "ssl://127.0.0.1:9093/1: 1 request(s) timed out: disconnect"),
    ],
)
def test_a_broker_away_or_a_connection_cut_is_not_a_refusal(code, text):
    assert refusal(KafkaError(code, text)) is None


def test_client_errors_end_the_process_once_on_a_refusal_and_keep_its_line():
    ended = []
    errors = ClientErrors(on_fatal=ended.append)
    errors(KafkaError(KafkaError._TRANSPORT, "ssl://127.0.0.1:9093/1: Connection refused"))
    errors.raise_refusal()  # nothing refused yet
    assert ended == [] and errors.refusal is None
    errors(KafkaError(*WRONG_PASSWORD))
    errors(KafkaError(*WRONG_CA))
    assert len(ended) == 1 and ended[0].code() == KafkaError._AUTHENTICATION
    with pytest.raises(KafkaAccessError, match="^kafka: SASL authentication with 127.0.0.1:55519 failed"):
        errors.raise_refusal()


def test_tls_files_librdkafka_cannot_use_are_an_access_error_naming_the_variable(tmp_path):
    authority = CertificateAuthority.create(tmp_path, "unit")
    one, other = authority.client("one"), authority.client("other")
    base = {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "SSL", "ssl.ca.location": str(authority.bundle)}
    with pytest.raises(KafkaAccessError) as mismatch:
        create_client(AdminClient, {**base, "ssl.certificate.location": str(one.certificate), "ssl.key.location": str(other.key)})
    assert str(mismatch.value) == "kafka: the client cannot be created: KAFKA_SSL_KEY_LOCATION failed: key values mismatch"

    locked = authority.client("locked", key_password="right-Pa55")
    with pytest.raises(KafkaAccessError) as wrong_password:
        create_client(AdminClient, {
            **base, "ssl.certificate.location": str(locked.certificate), "ssl.key.location": str(locked.key),
            "ssl.key.password": "wrong-Pa55",
        })
    assert str(wrong_password.value).startswith("kafka: the client cannot be created: KAFKA_SSL_KEY_LOCATION failed:")
    assert "KAFKA_SSL_KEY_PASSWORD" in str(wrong_password.value) and "Pa55" not in str(wrong_password.value)
