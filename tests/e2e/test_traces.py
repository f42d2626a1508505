"""One trace per tombstone in a real Jaeger, and /metrics that agree with what the topics hold."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from devstack.procs import http_get, wait_until
from harness.kafka import produce_raw, read_until
from harness.ledger import read_ledger
from harness.processes import BIN, ProcessorProcess, clean_environ, metric
from harness.topics import create_topics
from tests.support.processes import terminating
from tombstone_common.messages import DeadLetterHeader

pytestmark = pytest.mark.e2e


def trace_of(jaeger, trace_id: str) -> dict | None:
    status, body = http_get(f"{jaeger.query_url}/api/traces/{trace_id}")
    if status != 200:
        return None
    return json.loads(body)["data"][0]


def traceparent(record) -> str:
    return record.headers["traceparent"].decode().split("-")[1]


def tags(span: dict) -> dict:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def complete(trace: dict | None) -> bool:
    names = [span["operationName"] for span in (trace or {}).get("spans", [])]
    return any(n.startswith("send processed") for n in names) and any(n.startswith("send tombstones") for n in names)


def test_each_tombstone_is_one_trace_from_producer_to_processed(kafka, jaeger, names, uid, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=2)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    env = {
        **names, **otel,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DELETE_BATCH_INTERVAL_SECONDS": "0.2",
        "DELETE_ERROR_RATE": "0.5",
        "DELETE_MAX_ATTEMPTS": "30",
        "DELETE_RETRY_INITIAL_SECONDS": "0.05",
        "DELETE_RETRY_MAX_SECONDS": "0.2",
        "SIMULATION_SEED": "11",
        "DELETE_LEDGER_PATH": str(tmp_path / "ledger.jsonl"),
    }
    processor = ProcessorProcess("traced", env, tmp_path)
    processor.start()
    with terminating(processor):
        produced = subprocess.run(
            [str(BIN / "record-producer"), "-n", "5", "--batches", "3", "--prefix", f"tr{uid}", "--print-ids"],
            env={**clean_environ(), **env}, capture_output=True, text=True, timeout=60,
        )
        assert produced.returncode == 0, produced.stderr
        ids = produced.stdout.split()
        poison = f"poison-{uid}"
        produce_raw(kafka.bootstrap, names["TOPIC_TOMBSTONES"], [
            (poison.encode(), json.dumps({"id": poison, "batches": 1, "error_rate": 1}).encode()),
            (None, b"not json at all"),
        ])
        records = read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= 5)
        dead = read_until(kafka.bootstrap, names["TOPIC_DLQ"], lambda r: len(r) >= 2)

        # /metrics agrees with the topics.
        def counted(name):
            return metric(processor.metrics(), name)
        wait_until(
            lambda: counted("tombstones_dead_lettered_total") == 1
            and counted("tombstones_completed_total") == 5
            and counted("tombstones_invalid_total") == 1,
            30, "dead-lettered, completed and invalid metrics",
        )
        assert len(records) == 5
        assert counted("tombstones_dead_lettered_total") + counted("tombstones_invalid_total") == len(dead)
        ledger = read_ledger(tmp_path / "ledger.jsonl")
        assert counted("tombstones_batch_attempts_total") == len(ledger)
        assert counted("tombstones_batch_failures_total") == sum(not e["ok"] for e in ledger)

    assert Counter(r.key for r in records) == Counter(ids)
    assert all("traceparent" in r.headers for r in records + dead), "every record written carries traceparent"
    failed_attempts = 0
    for record in records:
        trace_id = traceparent(record)
        wait_until(lambda: complete(trace_of(jaeger, trace_id)), 30, f"trace of {record.key}")
        trace = trace_of(jaeger, trace_id)
        spans = {span["spanID"]: span for span in trace["spans"]}
        parent = {
            span_id: next((ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"), None)
            for span_id, span in spans.items()
        }
        by_name = lambda prefix: [s for s in spans.values() if s["operationName"].startswith(prefix)]  # noqa: E731
        (send,) = by_name("send tombstones")
        (process,) = by_name("process tombstones")
        (workflow,) = by_name("workflow cleanup_tombstone")
        deletes = by_name("delete_batch")
        (published,) = by_name("send processed")
        sleeps = by_name("sleep")
        assert trace["processes"][send["processID"]]["serviceName"] == "producer"
        assert trace["processes"][process["processID"]]["serviceName"] == "processor"
        assert parent[process["spanID"]] == send["spanID"]
        assert parent[workflow["spanID"]] == process["spanID"]
        assert all(parent[s["spanID"]] == workflow["spanID"] for s in deletes + sleeps + [published])
        assert sorted({tags(s)["batch"] for s in deletes}) == [1, 2, 3]
        assert len(sleeps) == 2
        for span in deletes:
            if tags(span).get("otel.status_code") == "ERROR":
                failed_attempts += 1
                assert tags(span).get("error") is True
        attempts = Counter(tags(s)["batch"] for s in deletes)
        assert sum(attempts.values()) == json.loads(record.value)["attempts"]
        send_tags = tags(send)
        assert send_tags["messaging.system"] == "kafka"
        assert send_tags["messaging.destination.name"] == names["TOPIC_TOMBSTONES"]
        process_tags = tags(process)
        assert process_tags["messaging.consumer.group.name"] == names["KAFKA_CONSUMER_GROUP"]
        assert int(process_tags["messaging.kafka.offset"]) == json.loads(record.value)["source"]["offset"]
        assert process_tags["messaging.destination.partition.id"] == str(json.loads(record.value)["source"]["partition"])
    assert failed_attempts > 0, "with a 50% error rate some attempts failed and carry error status"
    poisoned = next(r for r in dead if r.key == poison)
    assert poisoned.headers[DeadLetterHeader.ATTEMPTS] == b"30"
