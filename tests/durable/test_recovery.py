"""Processors as separate processes against a real Resonate server: kills, redelivery,
dependency restarts. (The long randomised version is tests/chaos.)"""

from __future__ import annotations

import asyncio
import time
import json
from collections import Counter

import pytest

from devstack.procs import http_get, wait_until
from harness.kafka import read_all, read_until
from harness.ledger import Kill, held, read_ledger
from harness.processes import ProcessorProcess, metric
from harness.topics import create_topics, send_tombstones
from tests.support.faults import judge
from tests.support.pipeline import processor_settings, running_processor, successful_batches
from tests.support.processes import durable_env, terminating
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.durable


def ledger(tmp_path) -> list[dict]:
    return read_ledger(tmp_path / "ledger.jsonl")


def part_done_on(pid: int, batches: int, tmp_path) -> list[str]:
    """The workflows of ``batches`` batches that process ``pid`` holds now, part done."""
    entries = ledger(tmp_path)
    completed_at = {e["id"]: e["at"] for e in entries if e["ok"] and e["batch"] >= batches}
    return held(entries, pid, time.time(), completed_at)


def test_a_killed_processor_holding_paused_partitions_strands_nothing(private_stack, names, uid, tmp_path):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=4)
    env = durable_env(broker, server, names, tmp_path, PROCESSOR_MAX_IN_FLIGHT="4", DELETE_BATCH_INTERVAL_SECONDS="0.5")
    first, second = ProcessorProcess("a", env, tmp_path), ProcessorProcess("b", env, tmp_path)
    first.start()
    second.start()
    tombstones = [Tombstone(id=tid, batches=4) for tid in new_ids(40, f"strand{uid}")]
    send_tombstones(broker.bootstrap_servers, names, tombstones)
    try:
        # Paused at its bound is not enough: the workflows it started must have run steps there,
        # or there is nothing for b to resume.
        wait_until(
            lambda: metric(first.metrics(), "tombstones_partitions_paused") == 1 and part_done_on(first.pid, 4, tmp_path),
            60, "a paused at its bound, with workflows part-done",
        )
        assigned_to_first = metric(first.metrics(), "tombstones_partitions_assigned")
        assert assigned_to_first >= 1
        victim = first.pid
        first.kill()
        kill = Kill(time.time(), victim, "SIGKILL")
        records = read_until(
            broker.bootstrap_servers, names["TOPIC_PROCESSED"],
            lambda r: len({x.key for x in r}) >= len(tombstones), timeout=180,
        )
        assert metric(second.metrics(), "tombstones_partitions_assigned") == 4, "b took over every partition"
    finally:
        second.terminate()
    verdict = judge([t.id for t in tombstones], [(r.key, r.value) for r in records], ledger(tmp_path), [kill])
    assert verdict.lost == []
    assert verdict.unexplained_redos == []
    assert verdict.recoveries[0], "a had workflows in flight when it was killed"


async def test_a_consumer_that_reads_everything_again_starts_no_second_run(kafka, resonate_server, names, uid, tmp_path):
    """Redelivery as after a restart before commit: a fresh consumer group re-reads the topic."""
    create_topics(kafka.bootstrap, names, partitions=2)
    tombstones = [Tombstone(id=tid, batches=2) for tid in new_ids(20, f"again{uid}")]
    settings = processor_settings(kafka.bootstrap, names, tmp_path, resonate_url=resonate_server.url)
    async with running_processor(settings):
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, tombstones)
        await asyncio.to_thread(read_until, kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= 20)
    executions_before = Counter(successful_batches(settings))

    reread = processor_settings(
        kafka.bootstrap, names, tmp_path, resonate_url=resonate_server.url,
        kafka_consumer_group=f"{names['KAFKA_CONSUMER_GROUP']}-again",
    )
    async with running_processor(reread) as processor:
        await asyncio.to_thread(wait_until, lambda: processor.state.completed == 20, 60, "stored results")
        assert processor.state.consumed == 20
    records = await asyncio.to_thread(read_all, kafka.bootstrap, names["TOPIC_PROCESSED"])
    assert Counter(r.key for r in records) == Counter(t.id for t in tombstones), "no second processed record"
    assert successful_batches(settings) == executions_before, "no step ran again"


def test_readyz_follows_the_broker_and_the_server_and_work_continues(private_stack, names, uid, tmp_path):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=2)
    processor = ProcessorProcess("r", durable_env(broker, server, names, tmp_path, DELETE_BATCH_INTERVAL_SECONDS="0.2"), tmp_path)
    processor.start()
    ready = lambda: http_get(processor.url + "/readyz")[0] == 200  # noqa: E731

    def unready_for(problem: bytes) -> bool:
        # Other problems may come and go meanwhile: a consumer that missed its session while the
        # broker was away can lose its partitions after it first reported ready again.
        status, body = http_get(processor.url + "/readyz")
        return status != 200 and problem in body

    with terminating(processor):
        broker.stop()
        wait_until(lambda: unready_for(b"broker"), 30, "not ready, naming the broker, while it is down")
        broker.start()
        wait_until(ready, 60, "ready after the broker is back")

        server.stop()
        wait_until(lambda: unready_for(b"resonate"), 30, "not ready, naming the server, while it is down")
        server.start()
        wait_until(ready, 60, "ready after the server is back")

        tombstones = [Tombstone(id=tid, batches=2) for tid in new_ids(10, f"after{uid}")]
        send_tombstones(broker.bootstrap_servers, names, tombstones)
        records = read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 10, timeout=120)
        assert {r.key for r in records} == {t.id for t in tombstones}
        assert processor.process.running(), "no crash loop: the same process carried on"


def test_a_resumed_workflow_stays_in_its_trace(private_stack, jaeger, names, uid, tmp_path):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=1)
    env = durable_env(
        broker, server, names, tmp_path,
        DELETE_BATCH_INTERVAL_SECONDS="1", OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
    )
    first = ProcessorProcess("t1", env, tmp_path)
    first.start()
    tombstone = Tombstone(id=f"resumed-{uid}", batches=6)
    send_tombstones(broker.bootstrap_servers, names, [tombstone])
    (sent,) = read_until(broker.bootstrap_servers, names["TOPIC_TOMBSTONES"], lambda r: len(r) >= 1)
    trace_id = sent.headers["traceparent"].decode().split("-")[1]

    def delete_spans() -> list[tuple[int, str]]:
        """(batch, service instance) of each delete_batch span Jaeger holds for the trace."""
        status, body = http_get(f"{jaeger.query_url}/api/traces/{trace_id}")
        if status != 200:
            return []
        trace = json.loads(body)["data"][0]
        spans = []
        for span in trace["spans"]:
            if span["operationName"] == "delete_batch":
                tags = {t["key"]: t["value"] for t in trace["processes"][span["processID"]]["tags"]}
                batch = next(t["value"] for t in span["tags"] if t["key"] == "batch")
                spans.append((batch, tags["service.instance.id"]))
        return spans

    wait_until(lambda: delete_spans(), 60, "the first processor's delete spans in Jaeger")
    first.kill()
    second = ProcessorProcess("t2", env, tmp_path)
    second.start()
    try:
        (record,) = read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 1, timeout=120)
    finally:
        second.terminate()
    assert len({e["pid"] for e in ledger(tmp_path)}) == 2, "the workflow ran on both processors"
    assert record.headers["traceparent"].decode().split("-")[1] == trace_id

    def both_in_the_trace() -> bool:
        # Jaeger batches what it receives, so the second processor's spans may land in parts.
        spans = delete_spans()
        return len({instance for _, instance in spans}) == 2 and {batch for batch, _ in spans} >= {6}

    wait_until(both_in_the_trace, 30, "the resumed steps, to the last batch, in the original trace with the first ones")
