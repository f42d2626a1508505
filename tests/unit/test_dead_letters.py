"""Nothing is dropped: a refused dead letter is retried until accepted and holds its partition;
Kafka errors are classified by code; a failed workflow, in either mode, dead-letters its tombstone."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError
from resonate.error import PlatformError, ServerError

from tests.unit.fakes import FakeConsumer, FakeResonate, RecordingPublisher, RefusingPublisher, dead_letters_via, giving_up_via
from tests.unit.test_intake import intake_running, until
from tests.unit.test_workflow import job, make_settings, run
from tombstone_common import kafka
from tombstone_common.kafka import DeliveryFailed
from tombstone_common.messages import DeadLetterHeader, SourcePosition
from tombstone_processor.dead_letters import DeadLetter
from tombstone_processor.http import HealthServer
from tombstone_processor.state import ProcessorState
from tombstone_processor.retries import RetryBackoff
from tombstone_processor.workflow import Dependencies


@pytest.mark.parametrize("code,transient", [
    (KafkaError._MSG_TIMED_OUT, True),
    (KafkaError.REQUEST_TIMED_OUT, True),
    (KafkaError._TRANSPORT, True),
    (KafkaError.NOT_LEADER_FOR_PARTITION, True),
    (KafkaError.NOT_COORDINATOR, True),
    (KafkaError.NOT_ENOUGH_REPLICAS, True),
    (KafkaError.THROTTLING_QUOTA_EXCEEDED, True),
    (KafkaError.MSG_SIZE_TOO_LARGE, False),
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
    (KafkaError._UNKNOWN_TOPIC, False),
    (KafkaError.UNKNOWN_TOPIC_OR_PART, False),
    (KafkaError.INVALID_RECORD, False),
])
def test_kafka_errors_are_classified_by_their_code_not_by_the_retriable_flag(code, transient):
    error = KafkaError(code)  # as in a delivery report: retriable() is False for all of them
    assert not error.retriable()
    assert kafka.kafka_error_passes(error) is transient
    assert ("transient" if transient else "permanent") in kafka.describe(error)


def test_a_fatal_error_is_permanent_whatever_its_code():
    assert not kafka.kafka_error_passes(KafkaError(KafkaError._MSG_TIMED_OUT, fatal=True))


def letter(offset: int = 8) -> DeadLetter:
    return DeadLetter(b"k", b"not json", SourcePosition(topic="tombstones", partition=0, offset=offset), "bad", "InvalidRecord")


async def test_a_refused_dead_letter_is_retried_until_accepted_and_is_stuck_meanwhile(capsys):
    publisher = RefusingPublisher()
    dead_letters = dead_letters_via(publisher)
    dead_letters._log_every = 3600  # one line per interval, not per attempt
    writing = asyncio.create_task(dead_letters.write(letter(), holds_offset=True))
    await until(lambda: publisher.refused >= 5, "refused several times")
    assert not writing.done(), "a refusal is never given up on"
    assert dead_letters.metrics.stuck_partitions() == {("tombstones", 0)}
    problem = dead_letters.problem()
    assert "tombstones/0@8" in problem and "MSG_SIZE_TOO_LARGE (permanent)" in problem
    assert "partition tombstones/0 paused" in problem

    publisher.refusing = False  # the operator raised the topic's limit
    await asyncio.wait_for(writing, 5)
    assert len(publisher.dead_letters) == 1
    assert dead_letters.problem() is None and not dead_letters.metrics.stuck
    assert dead_letters.metrics.dead_letter_refusals == publisher.refused
    refused_lines = [line for line in capsys.readouterr().out.splitlines() if "dead-letter refused" in line]
    assert len(refused_lines) == 1 < publisher.refused


async def test_an_invalid_record_whose_dead_letter_is_refused_holds_only_its_partition():
    consumer = FakeConsumer(partitions=2)
    consumer.add("a", partition=0)
    bad = consumer.add(None, value=b"{not json", partition=0)
    consumer.add("b", partition=0)
    async with intake_running(FakeResonate(), consumer) as (state, intake, _, _):
        publisher = RefusingPublisher()
        intake._giving_up.dead_letters._publisher = publisher
        await until(lambda: state.intake.held == {("tombstones", 0)}, "partition 0 paused")
        await until(lambda: consumer.committed.get(0) == bad, "committed up to the refused record, not past it")
        assert 0 in consumer.paused_partitions and 1 not in consumer.paused_partitions

        consumer.add("c", partition=1)  # the other partition keeps flowing
        await until(lambda: consumer.committed.get(1) == 1, "partition 1 committed")

        refused = publisher.refused
        await until(lambda: publisher.refused >= refused + 3, "retried again")
        assert consumer.committed[0] == bad and publisher.dead_letters == []

        publisher.refusing = False
        await until(lambda: consumer.committed.get(0) == 3, "committed past it once accepted")
        await until(lambda: not state.intake.held, "partition 0 resumed")
        assert 0 not in consumer.paused_partitions
    ((key, value, headers),) = publisher.dead_letters
    assert value == b"{not json" and headers[DeadLetterHeader.SOURCE_OFFSET] == str(bad).encode()


async def test_readyz_names_the_refused_dead_letter_and_the_metric_counts_the_partition():
    state = ProcessorState()
    publisher = RefusingPublisher()
    dead_letters = dead_letters_via(publisher)
    dead_letters.metrics = state.dead_letters
    health = HealthServer(state, {}, 0, live_checks={"dead-letter": dead_letters.problem})
    writing = asyncio.create_task(dead_letters.write(letter(), holds_offset=True))
    await until(lambda: publisher.refused >= 1, "refused once")
    state.intake.held = {("tombstones", 0)}  # what the intake does with it (tested above)
    health._problems = {}
    response = await health._readyz(None)
    assert response.status == 503 and b"tombstones/0@8" in response.body
    metrics = (await health._metrics(None)).body.decode()
    assert "tombstones_stuck_partitions 1.0" in metrics and "tombstones_dead_letters_stuck 1.0" in metrics
    writing.cancel()
    await asyncio.gather(writing, return_exceptions=True)
    assert not state.dead_letters.stuck, "a cancelled write (shutdown) is not stuck any more"


async def test_a_readiness_check_that_raises_is_a_failed_check_not_a_frozen_probe():
    calls = 0

    async def broken() -> str | None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    health = HealthServer(ProcessorState(), {"broker": broken}, 0)
    health.CHECK_INTERVAL_SECONDS = 0.01
    checker = asyncio.create_task(health._check_forever())
    await until(lambda: calls >= 2, "the checker keeps running")
    checker.cancel()
    assert "check failed: RuntimeError: boom" in health._problems["broker"]


async def test_a_processed_record_the_broker_refuses_dead_letters_the_tombstone_at_once(tmp_path):
    publisher = RefusingPublisher(refuse_processed=True)
    publisher.refusing = False  # the DLQ accepts
    settings = make_settings(tmp_path, delete_error_rate=0)
    (outcome,), _ = await run(settings, job("big", batches=2), recorder=publisher)
    assert outcome.status == "dead-lettered" and publisher.records == []
    ((_, _, headers),) = publisher.dead_letters
    assert headers[DeadLetterHeader.ERROR_CLASS] == b"PublishRefused"
    assert b"MSG_SIZE_TOO_LARGE" in headers[DeadLetterHeader.REASON]


async def test_a_publish_that_stays_transient_past_its_retry_time_dead_letters(tmp_path, monkeypatch):
    publisher = RefusingPublisher(KafkaError(KafkaError._MSG_TIMED_OUT), refuse_processed=True)
    publisher.refusing = False
    monkeypatch.setattr(RetryBackoff, "lasting", classmethod(lambda cls, s: cls(initial=0, maximum=0, attempts=3)))
    settings = make_settings(tmp_path, delete_error_rate=0, processor_publish_retry_seconds=1)
    (outcome,), _ = await run(settings, job("slow", batches=1), recorder=publisher)
    assert outcome.status == "dead-lettered"
    ((_, _, headers),) = publisher.dead_letters
    assert headers[DeadLetterHeader.ERROR_CLASS] == b"PublishFailed"
    assert b"after 3 attempts" in headers[DeadLetterHeader.REASON] and b"_MSG_TIMED_OUT" in headers[DeadLetterHeader.REASON]


async def test_a_failure_of_the_workflow_itself_dead_letters_its_tombstone(tmp_path, monkeypatch):
    from resonate.context import Context

    def broken_sleep(self, duration):
        raise ValueError("no clock")  # a failure in the workflow's body, outside any step

    monkeypatch.setattr(Context, "sleep", broken_sleep)
    publisher = RecordingPublisher()
    settings = make_settings(tmp_path, delete_error_rate=0, delete_batch_interval_seconds=1)
    (outcome,), _ = await run(settings, job("bug", batches=2), recorder=publisher)
    assert (outcome.status, outcome.batches) == ("dead-lettered", 1)
    ((_, _, headers),) = publisher.dead_letters
    assert headers[DeadLetterHeader.ERROR_CLASS] == b"ValueError"
    assert headers[DeadLetterHeader.REASON] == b"workflow failed: ValueError: no clock"


def test_a_server_error_inside_a_step_cannot_be_mistaken_for_a_failed_delete():
    # The workflow's ``except Exception`` relies on this: a server that refuses to store a step
    # raises PlatformError, which must pass through to the SDK (it releases the task).
    error = PlatformError([ServerError(500, "database unavailable")])
    assert not isinstance(error, Exception) and isinstance(error, BaseException)


async def test_a_workflow_that_fails_in_local_mode_settles_its_offset_only_after_its_dead_letter():
    consumer = FakeConsumer()
    resonate = FakeResonate()
    offset = consumer.add("doomed")
    async with intake_running(resonate, consumer, resonate_url=None) as (state, intake, _, _):
        publisher = RefusingPublisher()
        intake._giving_up.dead_letters._publisher = publisher
        await until(lambda: state.started == 1, "started")
        resonate.results["doomed"].set_exception(RuntimeError("the workflow broke"))
        await until(lambda: publisher.refused >= 2, "its dead letter refused")
        assert consumer.committed.get(0, 0) == offset, "not committed while the dead letter is refused"
        publisher.refusing = False
        await until(lambda: consumer.committed.get(0) == offset + 1, "committed after the dead letter")
    ((_, _, headers),) = publisher.dead_letters
    assert headers[DeadLetterHeader.REASON] == b"workflow failed: RuntimeError: the workflow broke"
    assert state.failed == 1 and state.dead_lettered == 1


def test_a_finished_workflow_is_forgotten_by_the_refusal_counts_and_the_deleter(tmp_path):
    from tombstone_processor.refusals import StepRefusals
    from tombstone_processor.simulation import SimulatedDeleter

    deleter = SimulatedDeleter(make_settings(tmp_path), "unit")
    refusals = StepRefusals(3, giving_up_via(RecordingPublisher()))
    deleter.count_attempt("t", "t:1")
    refusals._counts["t"] = 1
    from tests.unit.test_workflow import job

    Dependencies(None, deleter, None, None, refusals).forget(job("t"))
    assert deleter._attempts == {} and refusals._counts == {}


def test_delivery_failed_says_which_error_and_whether_it_passes():
    assert str(DeliveryFailed(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))).startswith(
        "TOPIC_AUTHORIZATION_FAILED (permanent)"
    )
