"""The pipeline against a real Kafka broker, with the processor in local (in-process) mode."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from devstack.procs import wait_until
from harness.kafka import committed_offsets, produce_raw, read_all, read_until
from harness.topics import create_topics, send_tombstones
from tests.support.pipeline import ledger, processor_settings, running_processor, successful_batches
from tombstone_common.messages import DeadLetterHeader, ProcessedRecord, Tombstone
from tombstone_processor import intake
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.integration


def by_id(records) -> dict[str, ProcessedRecord]:
    return {record.key: ProcessedRecord.model_validate_json(record.value) for record in records}


async def wait_for_processed(kafka, names, count, timeout=180):
    return await asyncio.to_thread(
        read_until, kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= count, timeout
    )


async def wait_for_completed(processor, count, timeout=60):
    """The processed record is published inside the workflow; the processor counts a workflow
    completed only when its result reaches the intake a moment later."""
    await asyncio.to_thread(
        wait_until, lambda: processor.state.completed >= count, timeout, f"{count} workflows completed"
    )


async def test_every_tombstone_gets_exactly_one_consistent_processed_record(kafka, names, uid, mode, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=3)
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, delete_error_rate=0.25, processor_max_in_flight=50, **mode
    )
    ids = new_ids(200, f"many{uid}")
    tombstones = [Tombstone(id=tid, batches=1 + n % 3) for n, tid in enumerate(ids)]
    async with running_processor(settings) as processor:
        report = await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, tombstones)
        await wait_for_processed(kafka, names, 200)
        await wait_for_completed(processor, 200)
    records = await asyncio.to_thread(read_all, kafka.bootstrap, names["TOPIC_PROCESSED"])

    assert Counter(record.key for record in records) == Counter({tid: 1 for tid in ids})
    processed = by_id(records)
    attempts_in_ledger = Counter(entry["id"] for entry in ledger(settings))
    for tombstone in tombstones:
        record = processed[tombstone.id]
        assert record.source.topic == names["TOPIC_TOMBSTONES"]
        assert (record.source.partition, record.source.offset) == report.positions[tombstone.id]
        assert record.batches == tombstone.batches
        assert record.attempts == attempts_in_ledger[tombstone.id] >= record.batches
        assert record.started_at <= record.completed_at
        assert record.processor == "test-processor"
        assert json.loads(next(r.value for r in records if r.key == tombstone.id)).keys() >= {
            "id", "source", "batches", "attempts", "started_at", "completed_at", "processor"
        }
    assert sum(r.attempts for r in processed.values()) > sum(r.batches for r in processed.values()), "errors were retried"
    assert set(successful_batches(settings).values()) == {1}
    assert processor.state.completed == 200 and processor.state.failed == 0
    committed = committed_offsets(kafka.bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"])
    assert sum(committed.values()) == 200


async def test_a_long_tombstone_does_not_block_the_short_ones_behind_it(kafka, names, uid, mode, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, delete_batch_interval_seconds=0.1, processor_max_in_flight=100, **mode
    )
    long = Tombstone(id=f"long-{uid}", batches=40)
    shorts = [Tombstone(id=tid, batches=1) for tid in new_ids(50, f"short{uid}")]
    async with running_processor(settings):
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, [long, *shorts])
        records = await wait_for_processed(kafka, names, 51)
    processed = by_id(records)
    assert processed[long.id].source.offset == 0
    assert [r.key for r in records][-1] == long.id, "the long tombstone finished last"
    latest_short = max(processed[s.id].completed_at for s in shorts)
    assert latest_short < processed[long.id].completed_at


async def test_a_redelivered_id_runs_once_and_is_published_once(kafka, names, uid, mode, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    settings = processor_settings(kafka.bootstrap, names, tmp_path, **mode)
    twice = Tombstone(id=f"twice-{uid}", batches=3)
    sentinel = Tombstone(id=f"sentinel-{uid}", batches=1)
    async with running_processor(settings) as processor:
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, [twice, twice])
        await wait_for_processed(kafka, names, 1)
        # Once the first run has finished, the same id again, then a sentinel behind it.
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, [twice, sentinel])
        await asyncio.to_thread(
            read_until, kafka.bootstrap, names["TOPIC_PROCESSED"],
            lambda records: any(r.key == sentinel.id for r in records),
        )
        assert processor.state.consumed == 4
    records = await asyncio.to_thread(read_all, kafka.bootstrap, names["TOPIC_PROCESSED"])
    assert Counter(r.key for r in records) == {twice.id: 1, sentinel.id: 1}
    assert successful_batches(settings) == Counter(
        {(twice.id, 1): 1, (twice.id, 2): 1, (twice.id, 3): 1, (sentinel.id, 1): 1}
    )


async def test_in_flight_workflows_never_exceed_the_bound(kafka, names, uid, mode, tmp_path, monkeypatch):
    # These workflows are short: pause as soon as the bound is full, not after the usual second.
    monkeypatch.setattr(intake, "PAUSE_AFTER_SECONDS", 0.05)
    create_topics(kafka.bootstrap, names, partitions=3)
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, processor_max_in_flight=10, delete_batch_interval_seconds=0.1, **mode
    )
    tombstones = [Tombstone(id=tid, batches=3) for tid in new_ids(100, f"bounded{uid}")]
    async with running_processor(settings) as processor:
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, tombstones)
        await wait_for_processed(kafka, names, 100)
        await wait_for_completed(processor, 100)
    assert processor.state.max_in_flight_seen == 10
    assert processor.state.pauses >= 1
    assert processor.state.completed == 100


BAD_VALUES = [
    (b"k1", b""),
    (b"k2", b"not json"),
    (None, b"\xff\xfe\xfd"),
    (None, b"[1, 2]"),
    (None, b"null"),
    (None, b'{"name": "no id"}'),
    (None, b'{"id": 12}'),
    (None, b'{"id": ""}'),
    (None, b'{"id": "has:colon"}'),
    (None, b'{"id": "ok", "batches": -1}'),
    (b"other-key", b'{"id": "mismatch"}'),
    (None, json.dumps({"id": "big", "pad": "x" * 70_000}).encode()),
]


async def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_flow(kafka, names, uid, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    settings = processor_settings(kafka.bootstrap, names, tmp_path)
    good = [Tombstone(id=f"good-{uid}-{n}", batches=1) for n in range(len(BAD_VALUES) + 1)]
    interleaved = [(good[0].id.encode(), good[0].to_value())]
    for bad, tombstone in zip(BAD_VALUES, good[1:]):
        interleaved += [bad, (tombstone.id.encode(), tombstone.to_value())]
    async with running_processor(settings) as processor:
        positions = await asyncio.to_thread(produce_raw, kafka.bootstrap, names["TOPIC_TOMBSTONES"], interleaved)
        processed = await wait_for_processed(kafka, names, len(good))
        dead = await asyncio.to_thread(
            read_until, kafka.bootstrap, names["TOPIC_DLQ"], lambda r: len(r) >= len(BAD_VALUES)
        )
        await asyncio.to_thread(
            wait_until, lambda: processor.state.invalid == len(BAD_VALUES), 30, "invalid records counted"
        )
    assert {r.key for r in processed} == {t.id for t in good}
    assert processor.state.invalid == len(BAD_VALUES)
    assert len(dead) == len(BAD_VALUES)
    sent_at = {offset: record for (_, offset), record in zip(positions, interleaved)}
    dead_letters = {int(r.headers[DeadLetterHeader.SOURCE_OFFSET]): r for r in dead}
    assert {sent_at[offset] for offset in dead_letters} == set(BAD_VALUES)
    for offset, record in dead_letters.items():
        key, value = sent_at[offset]
        assert record.key == (key.decode() if key else None)
        assert (record.value or b"") == value, "the original bytes, untouched"
        assert record.headers[DeadLetterHeader.REASON]
        assert record.headers[DeadLetterHeader.ERROR_CLASS] == b"InvalidRecord"
        assert record.headers[DeadLetterHeader.SOURCE_TOPIC] == names["TOPIC_TOMBSTONES"].encode()
    committed = committed_offsets(kafka.bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"])
    assert committed == {0: len(interleaved)}


async def test_leases_of_concurrent_workflows_are_renewed(kafka, resonate_server, names, uid, tmp_path, caplog):
    """Steps that outlive the lease, in several workflows at once, run once each: every lease is
    renewed (one heartbeat per workflow), so none lapses and is re-run while still running."""
    create_topics(kafka.bootstrap, names, partitions=1)
    attempts = 5
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, resonate_url=resonate_server.url, resonate_ttl_seconds=1.5,
        delete_max_attempts=attempts, delete_retry_initial_seconds=1, delete_retry_max_seconds=1,
    )
    stubborn = [Tombstone(id=f"slow-{uid}-{n}", batches=1, error_rate=1) for n in range(3)]
    async with running_processor(settings) as processor:
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, stubborn)
        await asyncio.to_thread(
            wait_until, lambda: processor.state.dead_lettered == len(stubborn), 120, "all dead-lettered"
        )
    per_id = Counter(entry["id"] for entry in ledger(settings))
    assert per_id == {t.id: attempts for t in stubborn}, "each step ran its attempts once, not again"
    assert not [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    dead = await asyncio.to_thread(read_all, kafka.bootstrap, names["TOPIC_DLQ"])
    assert Counter(r.key for r in dead) == {t.id: 1 for t in stubborn}
