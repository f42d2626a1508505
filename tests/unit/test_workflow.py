"""The workflow in Resonate's in-process mode, with a recording publisher instead of Kafka."""

import json

import pytest

from tombstone_processor.resonate_client import build_resonate
from tests.support.settings import IN_PROCESS, processor_settings
from tests.unit.fakes import RecordingPublisher as Recorder, giving_up_via
from tombstone_processor.simulation import Work
from tombstone_processor.tracing import TraceContext
from tombstone_processor.retries import RetryBackoff
from tombstone_processor.workflow import Job, cleanup_tombstone


def make_settings(tmp_path, **overrides):
    return processor_settings(tmp_path=tmp_path, preset=IN_PROCESS, **overrides)


def job(tombstone_id, batches=None, error_rate=None):
    return Job(
        id=tombstone_id,
        topic="tombstones",
        partition=0,
        offset=3,
        work=Work(batches=batches, error_rate=error_rate),
        started_at="2026-01-01T00:00:00+00:00",
        key=tombstone_id,
        value=json.dumps({"id": tombstone_id}),
        trace=TraceContext(parent={}, workflow_span_id="00000000000000aa"),
    )


def ledger(tmp_path):
    return [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]


async def run(settings, *jobs, recorder=None):
    """Run ``jobs`` through the real workflow in Resonate's in-process mode; the publisher is a
    fresh Recorder unless one is given."""
    recorder = recorder if recorder is not None else Recorder()
    resonate = build_resonate(settings, recorder, giving_up_via(recorder))
    try:
        outcomes = [await resonate.run(j.id, cleanup_tombstone, j).result() for j in jobs]
    finally:
        await resonate.stop()
    return outcomes, recorder


async def test_fixed_batches_without_errors_publish_one_record(tmp_path):
    settings = make_settings(tmp_path, delete_error_rate=0)
    (outcome,), recorder = await run(settings, job("a", batches=4))
    assert (outcome.status, outcome.batches, outcome.attempts) == ("processed", 4, 4)
    (record,) = recorder.records
    assert (record.id, record.batches, record.attempts, record.source.offset) == ("a", 4, 4, 3)
    assert [(e["batch"], e["ok"]) for e in ledger(tmp_path)] == [(1, True), (2, True), (3, True), (4, True)]


async def test_failed_attempts_are_retried_and_counted(tmp_path):
    settings = make_settings(tmp_path, delete_error_rate=0.5, delete_max_attempts=50)
    (outcome,), recorder = await run(settings, job("b", batches=5))
    entries = ledger(tmp_path)
    failures = [e for e in entries if not e["ok"]]
    assert failures, "seed 7 with 50% errors must produce failures"
    assert outcome.attempts == len(entries) == 5 + len(failures)
    assert recorder.records[0].attempts == outcome.attempts
    assert sorted({e["batch"] for e in entries if e["ok"]}) == [1, 2, 3, 4, 5]


async def test_poison_tombstone_is_dead_lettered_after_max_attempts(tmp_path):
    settings = make_settings(tmp_path, delete_max_attempts=3)
    (outcome,), recorder = await run(settings, job("c", batches=2, error_rate=1))
    assert outcome.status == "dead-lettered"
    assert recorder.records == []
    ((key, value, headers),) = recorder.dead_letters
    assert key == b"c" and json.loads(value) == {"id": "c"}
    assert headers["dlq.attempts"] == b"3"
    assert b"3 attempts" in headers["dlq.reason"]
    assert len(ledger(tmp_path)) == 3


async def test_same_id_twice_runs_once(tmp_path):
    settings = make_settings(tmp_path, delete_error_rate=0)
    (first, second), recorder = await run(settings, job("d", batches=2), job("d", batches=2))
    assert first == second
    assert len(recorder.records) == 1
    assert len(ledger(tmp_path)) == 2


async def test_random_mode_ends_and_respects_the_batch_cap(tmp_path):
    settings = make_settings(tmp_path, delete_error_rate=0, delete_done_rate=0, delete_max_batches=3)
    (outcome,), _ = await run(settings, job("e"))
    assert outcome.batches == 3


@pytest.mark.parametrize("attempt,delay", [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, None)])
def test_retry_backoff_doubles_up_to_the_ceiling_and_stops(attempt, delay):
    assert RetryBackoff(initial=1, maximum=5, attempts=5).next(attempt) == delay
