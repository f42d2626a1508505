"""The console scripts as separate processes, configured only by environment."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from devstack.procs import free_port, http_get, wait_until
from harness.kafka import read_until
from harness.processes import BIN, clean_environ, metric

pytestmark = pytest.mark.e2e


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        env={**clean_environ(), **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize(
    "command,env,variable",
    [
        (["record-processor"], {}, "KAFKA_BOOTSTRAP_SERVERS"),
        (["record-producer", "-n", "1"], {}, "KAFKA_BOOTSTRAP_SERVERS"),
        (["setup-topics"], {}, "KAFKA_BOOTSTRAP_SERVERS"),
        (["record-processor"], {"KAFKA_BOOTSTRAP_SERVERS": "nohostport"}, "KAFKA_BOOTSTRAP_SERVERS"),
        (["record-processor"], {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "RESONATE_URL": "ftp//x"}, "RESONATE_URL"),
        (["record-processor"], {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "PROCESSOR_MAX_IN_FLIGHT": "-5"}, "PROCESSOR_MAX_IN_FLIGHT"),
        (["setup-topics"], {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "TOPIC_PARTITIONS": "zero"}, "TOPIC_PARTITIONS"),
        (["record-processor"], {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
        (["record-producer", "-n", "1"], {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_USERNAME"),
        (["setup-topics"], {
            "KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
        }, "KAFKA_SASL_PASSWORD"),
    ],
)
def test_bad_configuration_exits_non_zero_with_one_line_naming_the_variable(command, env, variable, tmp_path):
    result = run(command, env, tmp_path, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: invalid configuration:") and variable in lines[0]


def test_setup_topics_is_idempotent(kafka, names, tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PARTITIONS": "2", **names}
    first = run(["setup-topics"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created ") == 3
    second = run(["setup-topics"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("exists ") == 3


def test_setup_topics_sets_min_insync_replicas_on_every_topic(kafka, names, tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PARTITIONS": "1",
           "TOPIC_MIN_INSYNC_REPLICAS": "1", **names}
    result = run(["setup-topics"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, names[n]) for n in ("TOPIC_TOMBSTONES", "TOPIC_PROCESSED", "TOPIC_DLQ")]
    for resource, future in admin.describe_configs(resources).items():
        entry = future.result(30)["min.insync.replicas"]
        # set on the topic by setup-topics, not inherited from the broker's default
        assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and entry.value == "1", resource


def test_setup_topics_gives_up_on_a_missing_broker_with_a_clear_error(tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "BROKER_WAIT_SECONDS": "2"}
    result = run(["setup-topics"], env, tmp_path, timeout=60)
    assert result.returncode == 1
    assert "no Kafka broker answered" in result.stderr.strip().splitlines()[-1]


def test_setup_topics_waits_for_as_many_brokers_as_replicas_then_gives_up_clearly(kafka, names, tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_REPLICATION_FACTOR": "3",
           "BROKER_WAIT_SECONDS": "2", **names}
    result = run(["setup-topics"], env, tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "waiting for 3 brokers (TOPIC_REPLICATION_FACTOR): 1 so far" in result.stdout
    assert "TOPIC_REPLICATION_FACTOR=3 needs 3" in result.stderr.strip().splitlines()[-1]
    topics = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert names["TOPIC_TOMBSTONES"] not in topics, "no topic created with fewer replicas than asked"


def test_setup_topics_with_its_topics_there_needs_no_more_brokers(kafka, names, tmp_path):
    """A processor runs setup-topics before it starts (the chart's init container): with a
    broker of three away it must still start."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, **names}
    assert run(["setup-topics"], env, tmp_path).returncode == 0
    again = run(["setup-topics"], {**env, "TOPIC_REPLICATION_FACTOR": "3", "BROKER_WAIT_SECONDS": "2"}, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists ") == 3 and "waiting for" not in again.stdout


def test_producer_and_processor_processes_end_to_end_with_graceful_stop(kafka, names, tmp_path):
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "PROCESSOR_HTTP_PORT": str(port),
        "DELETE_BATCH_INTERVAL_SECONDS": "0.2",
        "DELETE_RETRY_INITIAL_SECONDS": "0.05",
        "SIMULATION_SEED": "3",
        "PROCESSOR_SHUTDOWN_GRACE_SECONDS": "10",
        "LOG_FORMAT": "json",
        **names,
    }
    assert run(["setup-topics"], env, tmp_path).returncode == 0
    log = (tmp_path / "processor.log").open("w")
    processor = subprocess.Popen(
        [str(BIN / "record-processor")], env={**clean_environ(), **env}, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60, "processor ready", lambda: processor.poll() is None)
        produced = run(["record-producer", "-n", "20", "--batches", "2", "--prefix", "e2e", "--print-ids"], env, tmp_path)
        assert produced.returncode == 0, produced.stderr
        ids = produced.stdout.split()
        assert len(ids) == 20 and "produced 20/20" in produced.stderr
        records = read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= 20)
        assert Counter(r.key for r in records) == Counter(ids)
        assert all(json.loads(r.value)["batches"] == 2 for r in records)
        wait_until(lambda: metric(http_get(f"http://127.0.0.1:{port}/metrics")[1], "tombstones_completed_total") == 20, 10, "metrics")

        def lag() -> list[float]:
            body = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
            return [float(line.split()[-1]) for line in body.splitlines() if line.startswith("tombstones_consumer_lag{")]
        wait_until(lambda: lag() and not any(lag()), 20, "consumer lag reported, and zero once all is consumed")
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        started = time.monotonic()
        processor.send_signal(signal.SIGTERM)
        assert processor.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
    finally:
        if processor.poll() is None:
            processor.kill()
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "processor.log").read_text().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "processor stopped" for line in lines)
    assert any("LOCAL MODE" in line.get("event", "") for line in lines)


def test_a_busy_http_port_is_a_clear_error(tmp_path):
    import socket

    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PROCESSOR_HTTP_PORT": str(port), "LOG_LEVEL": "ERROR"}
        result = run(["record-processor"], env, tmp_path, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: PROCESSOR_HTTP_PORT={port}:")


def test_an_invalid_id_prefix_is_a_clear_error(tmp_path):
    result = run(["record-producer", "-n", "1", "--prefix", "bad:prefix"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: invalid --prefix 'bad:prefix':")
