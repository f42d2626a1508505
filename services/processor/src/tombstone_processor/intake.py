"""The Kafka side of the processor: poll, hand off, commit, pause when full.

Every polled record becomes a task of its own that settles its offset once its workflow exists on
the backend (in local mode: once it completed); the loop never waits for one. It keeps polling —
so the consumer stays in its group however long a hand-off takes — and commits the highest
contiguous settled offset of each partition. A record whose hand-off did not finish when the
processor stops stays uncommitted and is redelivered. When ``PROCESSOR_MAX_IN_FLIGHT`` workflows
are in flight it stops taking records; if the bound stays full (longer than a short workflow
takes), the partitions are paused until one ends.

The rule: an offset is committed only after its record's workflow was durably handed off (local
mode: completed) or its dead letter was acknowledged by the broker. Nothing else settles it. A
partition whose dead letter the broker refuses is paused at that record until it is accepted; the
other partitions keep flowing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Protocol

from confluent_kafka import KafkaException, Message, TopicPartition
from confluent_kafka.aio import AIOConsumer
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tombstone_common.logs import get_logger
from tombstone_common.messages import Headers, InvalidRecord, SourcePosition, generation_of, parse_tombstone
from tombstone_common.telemetry import Messaging, context_from_headers, kafka_attributes
from tombstone_processor.giving_up import GivingUp
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.offsets import PartitionOffsets
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.state import IntakeMetrics, Partition
from tombstone_processor.tracing import TraceContext, start_process_span
from tombstone_processor.workflow import Job

log = get_logger(__name__)

MAX_BATCH = 500
POLL_SECONDS = 0.5
# Pausing drops the records the consumer has already fetched, and resuming waits for a fetch
# (hundreds of ms). Short workflows free slots faster than that, so at the bound the intake
# first just waits, taking the next record from the fetched ones; only a bound that stays full
# this long (long workflows) pauses the partitions. Kept short: while it waits unpaused it does
# not poll, so a rebalance waits for it too.
PAUSE_AFTER_SECONDS = 0.25
# Commits are batched: an offset committed a little later only means a record that was already
# handed off may be redelivered after a crash, and joins its workflow by id.
COMMIT_EVERY_SECONDS = 0.2


class Clock(Protocol):
    """The intake's time: read for its deadlines (pause at the bound, commit interval, progress),
    and waited on while it is at the bound."""

    def now(self) -> float: ...

    async def first_of(self, *events: asyncio.Event, timeout: float) -> None:
        """Return when any of ``events`` is set, or after ``timeout`` seconds."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def first_of(self, *events: asyncio.Event, timeout: float) -> None:
        waits = [asyncio.create_task(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


class Intake:
    def __init__(
        self,
        settings: ProcessorSettings,
        consumer: AIOConsumer,
        dispatcher: Dispatcher,
        giving_up: GivingUp,
        metrics: IntakeMetrics,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._dispatcher = dispatcher
        self._giving_up = giving_up
        self.metrics = metrics
        self._partitions: dict[Partition, PartitionOffsets] = {}
        # one task per record until its offset settled: hand-offs, and invalid records' DLQ writes
        self._settling: set[asyncio.Task[None]] = set()
        self._dead_lettering = 0
        self._bound = settings.processor_max_in_flight
        self._committed_at = 0.0
        self._clock = clock or MonotonicClock()

    async def run(self, stopping: asyncio.Event) -> None:
        await self._consumer.subscribe(
            [self._settings.topic_tombstones],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        while not stopping.is_set():
            await self._hold_stuck_partitions()
            if self._free_slots() <= 0:
                await self._wait_for_slot(stopping)
            else:
                await self._set_paused(False)
                for message in await self._poll_batch(min(self._free_slots(), MAX_BATCH)):
                    self._take(message)
            await self._commit_due()
            self.metrics.progressed_at = self._clock.now()

    async def _poll_batch(self, size: int) -> list[Message]:
        """Up to ``size`` records: what has already arrived, or else the first one to arrive
        (waiting at most POLL_SECONDS) and what came with it. ``consume(size, timeout)`` would
        wait out the whole timeout unless the batch filled, which at low load is the whole of a
        record's latency. (Each call is a hop to the consumer's thread: under load, one.)"""
        arrived = await self._consumer.consume(num_messages=size, timeout=0)
        if arrived:
            return arrived
        first = await self._consumer.poll(POLL_SECONDS)
        if first is None:
            return []
        if size <= 1:
            return [first]
        return [first, *await self._consumer.consume(num_messages=size - 1, timeout=0)]

    def _free_slots(self) -> int:
        """Workflows in flight (counted by the dispatcher) and invalid records still being
        dead-lettered both hold a slot."""
        return self._bound - self._dispatcher.in_flight - self._dead_lettering

    # ── intake of one record ────────────────────────────────────────────────

    def _take(self, message: Message) -> None:
        if message.error():
            log.warning("consumer error", error=message.error().str())
            return
        offsets = self._partitions.get((message.topic(), message.partition()))
        if offsets is None:  # revoked while the batch was in flight: redelivered elsewhere
            return
        self.metrics.consumed += 1
        offsets.begin(message.offset())
        position = SourcePosition(topic=message.topic(), partition=message.partition(), offset=message.offset())
        headers = message.headers()  # a new list at each call
        span = self._process_span(message, position, headers)
        generation = 0
        try:
            generation = generation_of(headers)
            tombstone = parse_tombstone(message.key(), message.value(), self._settings.processor_max_record_bytes)
        except InvalidRecord as exc:
            span.set_status(Status(StatusCode.ERROR, exc.reason))
            self._settle_after(self._dead_letter(message, position, exc.reason, generation), offsets, position, span)
            return
        job = Job.received(tombstone, position, message.key(), message.value(), TraceContext.under(span), generation)
        workflow = self._dispatcher.admit(job)
        self._settle_after(self._dispatcher.released(workflow), offsets, position, span)

    def _settle_after(
        self, work: Coroutine[None, None, None], offsets: PartitionOffsets, position: SourcePosition, span: Span
    ) -> None:
        """Settle ``position`` when ``work`` succeeded; if it is cancelled (shutdown, partition
        revoked) the offset stays open and the record is redelivered."""

        async def settle() -> None:
            with trace.use_span(span, end_on_exit=True):
                await work
            offsets.settle(position.offset)

        task = asyncio.create_task(settle(), name=f"settle {position.topic}/{position.partition}@{position.offset}")
        self._settling.add(task)
        self.metrics.pending = len(self._settling)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        self.metrics.pending = len(self._settling)
        self._dispatcher.slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("record not settled", error=repr(task.exception()))

    def _process_span(self, message: Message, position: SourcePosition, headers: Headers | None) -> Span:
        key = message.key()
        attributes = kafka_attributes(
            "process",
            position.topic,
            key.decode(errors="replace") if key is not None else None,
            **{
                Messaging.PARTITION: str(position.partition),
                Messaging.OFFSET: position.offset,
                Messaging.GROUP: self._settings.kafka_consumer_group,
            },
        )
        return start_process_span(position.topic, context_from_headers(headers), **attributes)

    async def _dead_letter(self, message: Message, position: SourcePosition, why: str, generation: int) -> None:
        self._dead_lettering += 1  # holds a slot while its letter is written
        try:
            await self._giving_up.invalid_record(message.key(), message.value(), position, why, generation)
        finally:
            self._dead_lettering -= 1

    async def stop(self) -> None:
        """Drop what has not settled: those records stay uncommitted and come back."""
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)

    def record_lag(self, stats_json: str) -> None:
        """librdkafka statistics → consumer lag per assigned partition."""
        stats = json.loads(stats_json)
        lag = {}
        for topic, data in stats.get("topics", {}).items():
            for partition, values in data.get("partitions", {}).items():
                if (topic, int(partition)) in self.metrics.assigned and values.get("consumer_lag", -1) >= 0:
                    lag[(topic, int(partition))] = values["consumer_lag"]
        self.metrics.lag = lag

    # ── back-pressure ───────────────────────────────────────────────────────

    async def _hold_stuck_partitions(self) -> None:
        """Pause the partitions whose dead letter the broker refuses; resume them once accepted."""
        stuck = self._giving_up.dead_letters.metrics.stuck_partitions() & self._partitions.keys()
        if stuck == self.metrics.held:
            return
        held, freed = stuck - self.metrics.held, self.metrics.held - stuck
        self.metrics.held = stuck
        if held:
            await self._consumer.pause([TopicPartition(t, p) for t, p in held])
            log.warning("partitions paused until their dead letter is accepted", partitions=sorted(f"{t}/{p}" for t, p in held))
        if freed and not self.metrics.paused:
            await self._consumer.resume([TopicPartition(t, p) for t, p in freed])
        if freed:
            log.info("dead letter accepted; partitions resumed", partitions=sorted(f"{t}/{p}" for t, p in freed))

    async def _set_paused(self, paused: bool) -> None:
        if paused == self.metrics.paused:
            return
        partitions = [TopicPartition(t, p) for t, p in self._partitions if paused or (t, p) not in self.metrics.held]
        if partitions:
            await (self._consumer.pause if paused else self._consumer.resume)(partitions)
        self.metrics.paused = paused
        if paused:
            self.metrics.pauses += 1
        log.debug("partitions paused" if paused else "partitions resumed", in_flight=self._dispatcher.in_flight)

    async def _wait_for_slot(self, stopping: asyncio.Event) -> None:
        """Wait until a workflow frees a slot (or we stop). Past PAUSE_AFTER_SECONDS the partitions
        are paused and polled, so the consumer keeps its group membership however long it waits."""
        full_since = self._clock.now()
        self._dispatcher.slot_freed.clear()
        while self._free_slots() <= 0 and not stopping.is_set():
            if not self.metrics.paused and self._clock.now() - full_since >= PAUSE_AFTER_SECONDS:
                await self._set_paused(True)
            if self.metrics.paused:
                message = await self._consumer.poll(0)
                if message is not None and not message.error():
                    # Paused partitions deliver nothing; this one was assigned meanwhile. Put it back.
                    await self._consumer.seek(
                        TopicPartition(message.topic(), message.partition(), message.offset())
                    )
                timeout = POLL_SECONDS
            else:
                timeout = max(0.0, full_since + PAUSE_AFTER_SECONDS - self._clock.now())
            await self._clock.first_of(self._dispatcher.slot_freed, stopping, timeout=timeout)
            self._dispatcher.slot_freed.clear()
            await self._hold_stuck_partitions()
            await self._commit_due()
            self.metrics.progressed_at = self._clock.now()

    # ── offsets ─────────────────────────────────────────────────────────────

    async def _commit_due(self) -> None:
        if self._clock.now() - self._committed_at >= COMMIT_EVERY_SECONDS:
            await self.commit()

    async def commit(self, partitions: list[Partition] | None = None) -> None:
        chosen = partitions if partitions is not None else list(self._partitions)
        pending = [
            (tp, position)
            for tp in chosen
            if (offsets := self._partitions.get(tp)) is not None
            and (position := offsets.committable()) is not None
        ]
        self._committed_at = self._clock.now()
        if not pending:
            return
        try:
            await self._consumer.commit(
                offsets=[TopicPartition(t, p, position) for (t, p), position in pending],
                asynchronous=False,
            )
        except KafkaException as exc:
            log.warning("commit failed; retrying with the next batch", error=exc.args[0].str())
            return
        for tp, position in pending:
            self._partitions[tp].mark_committed(position)
        self.metrics.commits += 1

    # ── rebalances (called by the consumer, on the event loop) ──────────────

    async def _on_assign(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        self.metrics.joined, self.metrics.lost = True, False
        for tp in partitions:
            self._partitions[(tp.topic, tp.partition)] = PartitionOffsets()
            self.metrics.assigned.add((tp.topic, tp.partition))
        await consumer.incremental_assign(partitions)
        if partitions:
            # librdkafka keeps a partition's pause across its loss or revocation and a new
            # assignment: set it from ours, or a partition paused before it was lost never
            # fetches again (the consumer sits on its lag, assigned, unpaused by our count).
            await (consumer.pause if self.metrics.paused else consumer.resume)(partitions)
        log.info("partitions assigned", partitions=_names(partitions))

    async def _on_revoke(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        await self.commit(revoked)
        self._forget(revoked)
        await consumer.incremental_unassign(partitions)
        log.info("partitions revoked", partitions=_names(partitions))

    async def _on_lost(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        # Not in the group any more until the next assignment: /readyz says so.
        self.metrics.joined, self.metrics.lost = False, True
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        await consumer.incremental_unassign(partitions)
        log.warning("partitions lost", partitions=_names(partitions))

    def _forget(self, partitions: list[Partition]) -> None:
        for tp in partitions:
            self._partitions.pop(tp, None)
            self.metrics.held.discard(tp)
            self.metrics.assigned.discard(tp)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}/{tp.partition}" for tp in partitions]
