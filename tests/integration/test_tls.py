"""The commands against a real broker over TLS, mTLS and SASL_SSL with SCRAM, with certificates
made here (tests/support/tls.py); and, when the broker refuses a client (an untrusted broker
certificate, a client certificate missing or expired, a wrong SCRAM password), each command ends
at once with one line naming the cause and status 2, without a secret in anything it printed.

The processor runs in local mode (no Resonate server needed). What arrived is read through the
broker's plaintext listener."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.kafka import BrokerTls, KafkaBroker
from devstack.procs import http_get
from harness.kafka import read_until
from harness.processes import BIN, ProcessorProcess, clean_environ
from tests.conftest import CACHE
from tests.support.pipeline import processor_settings
from tests.support.processes import the_error_line
from tests.support.tls import CertificateAuthority, Issued
from tombstone_processor.app import Processor
from tombstone_processor.readiness import readiness_checks
from tombstone_processor.server_check import ServerCheck

pytestmark = pytest.mark.integration

SCRAM_USER = "alice"
SCRAM_PASSWORD = "alice-Scram-Pa55"
#: The wrong password and the client key's password: neither may appear in any output.
WRONG_PASSWORD = "wrong-Scram-Pa55-0f3c"
KEY_PASSWORD = "client-Key-Pa55-9d1e"
#: A command that waited for the broker this long would fail the run's deadline, not end clearly.
LONG_BROKER_WAIT = "600"
COMMAND_DEADLINE = 90


@dataclass
class TlsBroker:
    broker: KafkaBroker
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    client: Issued
    expired_client: Issued
    locked_expired_client: Issued  # its key encrypted with KEY_PASSWORD

    def env(self, listener: str, **extra: str) -> dict[str, str]:
        """A command's environment for one listener, with a working configuration."""
        broker = self.broker
        common = {"KAFKA_SSL_CA_LOCATION": str(self.ca.bundle)}
        return {
            "tls": {"KAFKA_BOOTSTRAP_SERVERS": broker.ssl_bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SSL", **common},
            "mtls": {
                "KAFKA_BOOTSTRAP_SERVERS": broker.mtls_bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SSL", **common,
                "KAFKA_SSL_CERTIFICATE_LOCATION": str(self.client.certificate),
                "KAFKA_SSL_KEY_LOCATION": str(self.client.key),
            },
            "sasl_ssl": {
                "KAFKA_BOOTSTRAP_SERVERS": broker.sasl_ssl_bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                **common, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": SCRAM_USER,
                "KAFKA_SASL_PASSWORD": SCRAM_PASSWORD,
            },
        }[listener] | extra


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> TlsBroker:
    """One broker with the three TLS listeners beside its plaintext one."""
    certs = tmp_path_factory.mktemp("certs")
    ca = CertificateAuthority.create(certs, "pipeline")
    other_ca = CertificateAuthority.create(certs, "unrelated")
    server = ca.server("broker")
    broker = KafkaBroker.on_free_ports(
        tmp_path_factory.mktemp("kafka-tls"), CACHE,
        tls=BrokerTls(server.certificate, server.key, client_ca=ca.bundle, scram_users={SCRAM_USER: SCRAM_PASSWORD}),
    )
    broker.start()
    try:
        yield TlsBroker(
            broker, ca, other_ca,
            client=ca.client("client"),
            expired_client=ca.client("expired-client", expired=True),
            locked_expired_client=ca.client("locked-expired-client", expired=True, key_password=KEY_PASSWORD),
        )
    finally:
        broker.stop()


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        env={**clean_environ(), **env}, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_DEADLINE,
    )


@pytest.mark.parametrize("listener", ["tls", "mtls", "sasl_ssl"])
def test_the_pipeline_runs_over_each_secured_listener(tls_broker, listener, names, uid, tmp_path):
    env = tls_broker.env(
        listener, **names, TOPIC_PARTITIONS="1", DELETE_BATCH_INTERVAL_SECONDS="0", DELETE_ERROR_RATE="0",
        PROCESSOR_SHUTDOWN_GRACE_SECONDS="5",
    )
    setup = run(["setup-topics"], env, tmp_path)
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout.count("created ") == 3

    produced = run(["record-producer", "-n", "3", "--batches", "1", "--prefix", f"{listener}{uid}", "--print-ids"], env, tmp_path)
    assert produced.returncode == 0, produced.stderr
    ids = produced.stdout.split()
    assert len(ids) == 3 and "produced 3/3" in produced.stderr

    processor = ProcessorProcess(listener, env, tmp_path)
    processor.start()  # /readyz answers 200 only once the broker answered and the group was joined
    try:
        records = read_until(tls_broker.broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 3)
        ready_body = http_get(processor.url + "/readyz")[1].decode()
    finally:
        assert processor.terminate() == 0
    assert Counter(record.key for record in records) == Counter(ids)
    assert all(json.loads(record.value)["batches"] == 1 for record in records)
    assert SCRAM_PASSWORD not in ready_body
    assert SCRAM_PASSWORD not in processor.process.log_file.read_text()


@dataclass(frozen=True)
class Refusal:
    listener: str
    change: dict[str, str]
    expected: str  # in the line, after "error: kafka: "


REFUSALS = {
    "wrong CA": Refusal("tls", {"KAFKA_SSL_CA_LOCATION": "<other ca>"}, "TLS handshake with {address} failed: certificate verify failed"),
    "expired client certificate": Refusal(
        "mtls", {"KAFKA_SSL_CERTIFICATE_LOCATION": "<expired certificate>", "KAFKA_SSL_KEY_LOCATION": "<expired key>"},
        "TLS handshake with {address} failed: the broker refused the client certificate",
    ),
    "missing client certificate": Refusal(
        "mtls", {"KAFKA_SSL_CERTIFICATE_LOCATION": "", "KAFKA_SSL_KEY_LOCATION": ""},
        "TLS handshake with {address} failed: the broker refused the client certificate",
    ),
    "wrong SCRAM password": Refusal(
        "sasl_ssl", {"KAFKA_SASL_PASSWORD": WRONG_PASSWORD}, "SASL authentication with {address} failed: "
    ),
}
COMMANDS = {
    "setup-topics": ["setup-topics"],
    "record-producer": ["record-producer", "-n", "3"],
    "record-processor": ["record-processor"],
    "record-admin": ["record-admin", "dlq", "list"],
}


def refused_env(tls_broker: TlsBroker, refusal: Refusal, names: dict[str, str]) -> dict[str, str]:
    files = {
        "<other ca>": str(tls_broker.other_ca.bundle),
        "<expired certificate>": str(tls_broker.expired_client.certificate),
        "<expired key>": str(tls_broker.expired_client.key),
    }
    change = {name: files.get(value, value) for name, value in refusal.change.items()}
    return tls_broker.env(
        refusal.listener, **names, **change, BROKER_WAIT_SECONDS=LONG_BROKER_WAIT, PROCESSOR_HTTP_PORT="0",
    )


def assert_ends_with_one_clear_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    line = the_error_line(result.stderr)
    assert line.startswith(f"error: kafka: {expected}"), line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_client_ends_each_command_with_one_line_and_status_2(tls_broker, case, command, names, tmp_path):
    refusal = REFUSALS[case]
    env = refused_env(tls_broker, refusal, names)
    result = run(COMMANDS[command], env, tmp_path)  # within COMMAND_DEADLINE: no broker wait waited out
    assert_ends_with_one_clear_line(result, refusal.expected.format(address=env["KAFKA_BOOTSTRAP_SERVERS"]))


@pytest.mark.parametrize("command", COMMANDS)
def test_secrets_stay_out_of_every_output_of_a_refused_run(tls_broker, command, names, tmp_path):
    """A wrong SCRAM password, and an encrypted client key (its password right, its certificate
    expired), at DEBUG level: neither password appears in anything the command printed."""
    wrong_password = refused_env(tls_broker, REFUSALS["wrong SCRAM password"], names) | {"LOG_LEVEL": "DEBUG"}
    locked = tls_broker.locked_expired_client
    locked_key = tls_broker.env(
        "mtls", **names, KAFKA_SSL_CERTIFICATE_LOCATION=str(locked.certificate), KAFKA_SSL_KEY_LOCATION=str(locked.key),
        KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD, BROKER_WAIT_SECONDS=LONG_BROKER_WAIT, PROCESSOR_HTTP_PORT="0", LOG_LEVEL="DEBUG",
    )
    for env, expected in (
        (wrong_password, "SASL authentication with"),
        (locked_key, "TLS handshake with"),
    ):
        result = run(COMMANDS[command], env, tmp_path)
        assert_ends_with_one_clear_line(result, expected)
        for secret in (WRONG_PASSWORD, KEY_PASSWORD):
            assert secret not in result.stdout and secret not in result.stderr


async def test_a_refusal_while_running_ends_the_processor_and_readyz_keeps_the_password_out(tls_broker, names, tmp_path):
    """Past the start's check (a password changed on the broker, a certificate that expired
    since): the processor's own clients meet the refusal and end it, instead of retrying while
    it looks alive; the broker's line on /readyz meanwhile shows no password."""
    env = refused_env(tls_broker, REFUSALS["wrong SCRAM password"], names)
    settings = processor_settings(
        env["KAFKA_BOOTSTRAP_SERVERS"], names, tmp_path,
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=SCRAM_USER,
        kafka_sasl_password=WRONG_PASSWORD, kafka_ssl_ca_location=str(tls_broker.ca.bundle),
    )
    broker_problem = await readiness_checks(settings, ServerCheck(status=""))["broker"]()
    assert broker_problem and WRONG_PASSWORD not in broker_problem

    processor = Processor(settings)
    code = await asyncio.wait_for(processor.run(asyncio.Event()), COMMAND_DEADLINE)
    assert code != 0
    assert processor.kafka_errors.refusal.startswith(
        f"kafka: SASL authentication with {env['KAFKA_BOOTSTRAP_SERVERS']} failed"
    )
    assert WRONG_PASSWORD not in processor.kafka_errors.refusal
