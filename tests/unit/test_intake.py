"""The intake's failure cases with a fake consumer and a scripted Resonate client, on a fake clock:
time passes when a test advances it (or when the fake consumer waits out a poll with nothing to
deliver), never on the wall clock."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import pytest
from resonate.error import ServerError

from tests.support.settings import FAKE_BACKENDS, processor_settings
from tests.unit.fakes import FakeClock, FakeConsumer, FakeResonate, RecordingPublisher, giving_up_via
from tombstone_common.messages import DeadLetterHeader
from tombstone_processor.app import Processor
from tombstone_processor.readiness import consumer_readiness
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.mode import Mode
from tombstone_processor.http import HealthServer
from tombstone_processor import dispatcher as dispatcher_module
from tombstone_processor.intake import PAUSE_AFTER_SECONDS, POLL_SECONDS, Intake
from tombstone_processor.state import ProcessorState


@asynccontextmanager
async def intake_running(resonate: FakeResonate, consumer: FakeConsumer, **overrides):
    config = processor_settings(preset=FAKE_BACKENDS, **overrides)
    state = ProcessorState()
    publisher = RecordingPublisher()
    giving_up = giving_up_via(publisher, Mode.of(config), state.giving_up)
    giving_up.dead_letters.metrics = state.dead_letters
    dispatcher = Dispatcher(
        resonate, state.workflows, giving_up, config.processor_handoff_attempts, Mode.of(config), backoff_max=0.01
    )
    intake = Intake(config, consumer, dispatcher, giving_up, state.intake, clock=consumer.clock)
    stopping = asyncio.Event()
    task = asyncio.create_task(intake.run(stopping))
    try:
        yield state, intake, dispatcher, publisher
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)
        await intake.stop()
        await intake.commit()
        await dispatcher.abandon()


async def until(condition, what: str, timeout: float = 5.0) -> None:
    """Let the event loop run until ``condition()`` holds. Nothing here waits for time to pass:
    ``timeout`` only bounds a test whose condition never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout:g}s"
        await asyncio.sleep(0)


async def settle(turns: int = 20) -> None:
    """Let the event loop run whatever is ready, a few times over; no time passes."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def pass_time(clock: FakeClock, seconds: float) -> None:
    """Advance ``clock`` once the intake waits on it (at the bound): time passes while it waits."""
    await until(lambda: clock.waited_on, "the intake waits for time to pass")
    clock.advance(seconds)


async def still_polling(consumer: FakeConsumer, what: str) -> None:
    polls = consumer.polls
    await until(lambda: consumer.polls > polls + 3, what)


async def test_a_hand_off_that_never_answers_blocks_neither_polling_nor_the_records_behind_it():
    consumer = FakeConsumer()
    resonate = FakeResonate(hang={"b"})
    for tid in ("a", "b", "c"):
        consumer.add(tid)
    async with intake_running(resonate, consumer) as (state, intake, dispatcher, _):
        await until(lambda: state.started == 2, "a and c handed off")
        await still_polling(consumer, "the intake keeps polling")
        await until(lambda: consumer.committed.get(0) == 1, "a committed; b holds the position")
        assert state.in_flight == 3, "b holds a slot while it waits"
    assert consumer.committed[0] == 1, "b was never handed off: it stays uncommitted and comes back"


async def test_a_transient_server_error_is_retried_and_counts_one_start():
    consumer = FakeConsumer()
    resonate = FakeResonate(failures={"a": [ServerError(503, "unavailable"), ServerError(429, "slow down")] * 3})
    consumer.add("a")
    async with intake_running(resonate, consumer) as (state, *_):
        await until(lambda: state.started == 1, "handed off after the transient failures")
        await until(lambda: consumer.committed.get(0) == 1, "offset committed")
        assert state.handoff_retries == 6
        assert state.failed == 0 and state.dead_lettered == 0
    assert resonate.runs == ["a"] * 7


async def test_a_refused_hand_off_is_dead_lettered_with_the_reason_and_its_offset_settles():
    consumer = FakeConsumer()
    refusal = ServerError(400, "Promise ID must be prefixed by resonate:origin")
    resonate = FakeResonate(failures={"bad": [refusal] * 10})
    consumer.add("bad")
    consumer.add("good")
    async with intake_running(resonate, consumer) as (state, _, _, publisher):
        await until(lambda: consumer.committed.get(0) == 2, "both offsets settled")
        assert state.failed == 1 and state.dead_lettered == 1 and state.started == 1
    assert resonate.runs.count("bad") == 3, "PROCESSOR_HANDOFF_ATTEMPTS bounds the attempts"
    ((key, value, headers),) = publisher.dead_letters
    assert key == b"bad" and b'"bad"' in value
    assert b"Promise ID must be prefixed" in headers[DeadLetterHeader.REASON]
    assert headers[DeadLetterHeader.ERROR_CLASS] == b"ServerError"
    assert headers[DeadLetterHeader.ATTEMPTS] == b"3"


async def test_polling_continues_at_the_bound_while_hand_offs_wait():
    consumer = FakeConsumer.holding(f"t{n}" for n in range(8))
    resonate = FakeResonate(hang={f"t{n}" for n in range(5)})
    async with intake_running(resonate, consumer, processor_max_in_flight=5) as (state, *_):
        await until(lambda: state.consumed == 5, "the bound filled")
        await pass_time(consumer.clock, PAUSE_AFTER_SECONDS)
        await until(lambda: state.paused, "paused once the bound stayed full PAUSE_AFTER_SECONDS")
        for _ in range(3):
            polls = consumer.polls
            await pass_time(consumer.clock, POLL_SECONDS)
            await until(lambda: consumer.polls > polls, "still polling (group membership) while paused")
        assert state.in_flight == 5 and state.consumed == 5


async def test_a_slot_freed_at_the_bound_is_refilled_without_pausing_the_partitions():
    # Pausing drops what the consumer has fetched: short workflows must not pay a pause, a
    # resume and a fetch for every slot they free.
    consumer = FakeConsumer.holding(f"t{n}" for n in range(3))
    resonate = FakeResonate()
    async with intake_running(resonate, consumer, processor_max_in_flight=2) as (state, *_):
        await until(lambda: state.started == 2, "the bound filled")
        await pass_time(consumer.clock, PAUSE_AFTER_SECONDS * 0.9)
        await settle()
        assert not state.paused and consumer.clock.waited_on, "still waiting, unpaused, before PAUSE_AFTER_SECONDS"
        resonate.finish("t0")
        await until(lambda: state.started == 3, "the freed slot refilled")
        assert state.pauses == 0 and not consumer.paused


async def test_a_partition_paused_at_the_bound_then_lost_is_consumed_again_once_reassigned():
    # As librdkafka, the fake keeps a partition's pause across its loss and a new assignment.
    consumer = FakeConsumer.holding(["a", "b"])
    resonate = FakeResonate()
    async with intake_running(resonate, consumer, processor_max_in_flight=2) as (state, *_):
        await until(lambda: state.started == 2, "the bound filled")
        await pass_time(consumer.clock, PAUSE_AFTER_SECONDS)
        await until(lambda: state.paused, "paused at the bound")
        await consumer.lose_partitions()  # the broker went away
        resonate.finish("a")
        resonate.finish("b")
        await until(lambda: not state.paused, "below the bound again")
        await consumer.callbacks["assign"](consumer, consumer.partitions)  # the broker is back
        consumer.add("c")
        await until(lambda: state.started == 3, "the reassigned partition's record handed off")


async def test_a_burst_of_records_opens_a_bounded_number_of_hand_offs_at_once(monkeypatch):
    # Thousands of simultaneous promise creations would each hold their buffers until answered.
    monkeypatch.setattr(dispatcher_module, "HANDOFF_CONCURRENCY", 3)
    consumer = FakeConsumer.holding(f"t{n}" for n in range(8))
    resonate = FakeResonate(hang={f"t{n}" for n in range(8)})
    async with intake_running(resonate, consumer) as (state, *_):
        await until(lambda: state.consumed == 8, "all eight taken (the bound is 10)")
        await still_polling(consumer, "the intake went on polling")
        assert len(resonate.runs) == 3, "only three creations in progress while they hang"
        assert state.in_flight == 8, "the others wait for a hand-off slot, counted in flight"


async def test_local_mode_settles_an_offset_only_when_its_workflow_completed():
    consumer = FakeConsumer()
    resonate = FakeResonate()
    consumer.add("done")
    consumer.add("cut-short")
    async with intake_running(resonate, consumer, resonate_url=None) as (state, intake, dispatcher, _):
        await until(lambda: state.started == 2, "both started")
        resonate.finish("done")
        await until(lambda: consumer.committed.get(0) == 1, "the completed one committed")
        await dispatcher.abandon()  # the shutdown cancels the other: that is not completion
        await intake.commit()
    assert consumer.committed[0] == 1


async def test_lost_partitions_make_the_processor_unready_with_the_reason():
    consumer = FakeConsumer()
    async with intake_running(FakeResonate(), consumer) as (state, *_):
        await until(lambda: state.joined, "joined")
        assert consumer_readiness(state.intake) is None
        await consumer.lose_partitions()
        assert not state.joined
        assert "lost its partitions" in consumer_readiness(state.intake)
        await consumer.callbacks["assign"](consumer, consumer.partitions)
        assert consumer_readiness(state.intake) is None, "ready again once reassigned"


async def test_healthz_fails_with_the_reason_when_the_intake_is_wedged_with_work_pending():
    processor = Processor(processor_settings(preset=FAKE_BACKENDS, processor_liveness_seconds=0.5))
    processor.ready.set()
    health = HealthServer(processor.state, {}, 0, liveness=processor._liveness)
    intake = processor.state.intake
    assert (await health._healthz(None)).status == 200

    intake.progressed_at = time.monotonic() - 10  # idle for long, but nothing pending: alive
    assert (await health._healthz(None)).status == 200

    intake.pending = 3
    response = await health._healthz(None)
    assert response.status == 503
    assert b"no progress for 10s" in response.body and b"3 records pending" in response.body


async def test_a_wedged_consumer_call_stops_progress():
    consumer = FakeConsumer()
    async with intake_running(FakeResonate(), consumer) as (state, *_):
        await until(lambda: consumer.polls > 2, "polling")
        consumer.unwedged.clear()
        polls = consumer.polls
        await until(lambda: consumer.polls > polls, "a consumer call that does not return")
        before = state.progressed_at
        consumer.clock.advance(10)
        await settle()
        assert state.progressed_at == before, "no progress while consume hangs"
        consumer.unwedged.set()
        await until(lambda: state.progressed_at > before, "progress again once it returns")


@pytest.mark.parametrize("error,transient", [
    (ServerError(500, "x"), True), (ServerError(503, "x"), True), (ServerError(429, "x"), True),
    (ServerError(400, "x"), False), (ServerError(404, "x"), False), (ServerError(409, "x"), False),
    (TimeoutError(), True), (ValueError("x"), False),
])
def test_which_failures_are_transient(error, transient):
    from tombstone_processor.failures import is_transient

    assert is_transient(error) is transient
