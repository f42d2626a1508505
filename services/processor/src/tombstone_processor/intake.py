"""The Kafka side of the processor: poll, hand off, commit, pause when full.

Each polled batch is handed off concurrently; once every workflow of the batch exists on the
backend, the highest contiguous settled offset of each partition is committed. Nothing here
waits for a workflow to *finish* (except in local mode, where nothing is durable before that),
so a long tombstone never blocks the short ones behind it. When the processor holds
``PROCESSOR_MAX_IN_FLIGHT`` workflows, its partitions are paused until one finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from confluent_kafka import KafkaException, Message, TopicPartition
from confluent_kafka.aio import AIOConsumer
from opentelemetry.trace import Status, StatusCode
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from tombstone_common.logs import get_logger
from tombstone_common.messages import (
    InvalidRecord,
    SourcePosition,
    dead_letter_headers,
    parse_tombstone,
    utc_now,
)
from tombstone_common.telemetry import Messaging, context_from_headers, headers_from, kafka_attributes
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.effects import Publisher
from tombstone_processor.offsets import PartitionOffsets
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.simulation import Work
from tombstone_processor.state import ProcessorState
from tombstone_processor.tracing import TraceContext, process_span
from tombstone_processor.workflow import Job

log = get_logger(__name__)

MAX_BATCH = 500
POLL_SECONDS = 0.5

Partition = tuple[str, int]


class Intake:
    def __init__(
        self,
        settings: ProcessorSettings,
        consumer: AIOConsumer,
        dispatcher: Dispatcher,
        publisher: Publisher,
        state: ProcessorState,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._dispatcher = dispatcher
        self._publisher = publisher
        self._state = state
        self._partitions: dict[Partition, PartitionOffsets] = {}
        self._bound = settings.processor_max_in_flight

    async def run(self, stopping: asyncio.Event) -> None:
        await self._consumer.subscribe(
            [self._settings.topic_tombstones],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        while not stopping.is_set():
            free = self._bound - self._dispatcher.in_flight
            if free <= 0:
                await self._set_paused(True)
                await self._wait_for_slot()
            else:
                await self._set_paused(False)
                messages = await self._consumer.consume(
                    num_messages=min(free, MAX_BATCH), timeout=POLL_SECONDS
                )
                await self._take(messages)
            await self.commit()

    # ── intake of one batch ─────────────────────────────────────────────────

    async def _take(self, messages: list[Message]) -> None:
        handoffs: list[Awaitable[None]] = []
        for message in messages:
            if message.error():
                log.warning("consumer error", error=message.error().str())
                continue
            offsets = self._partitions.get((message.topic(), message.partition()))
            if offsets is None:  # revoked while the batch was in flight: redelivered elsewhere
                continue
            self._state.consumed += 1
            offsets.begin(message.offset())
            handoffs.append(self._route(message, offsets))
        await asyncio.gather(*handoffs)

    async def _route(self, message: Message, offsets: PartitionOffsets) -> None:
        position = SourcePosition(
            topic=message.topic(), partition=message.partition(), offset=message.offset()
        )
        key, value = message.key(), message.value()
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
        with process_span(position.topic, context_from_headers(message.headers()), **attributes) as span:
            try:
                tombstone = parse_tombstone(key, value, self._settings.processor_max_record_bytes)
            except InvalidRecord as exc:
                span.set_status(Status(StatusCode.ERROR, exc.reason))
                await self._dead_letter(message, position, exc.reason)
                offsets.settle(position.offset)
                return
            job = Job(
                id=tombstone.id,
                topic=position.topic,
                partition=position.partition,
                offset=position.offset,
                work=Work(batches=tombstone.batches, error_rate=tombstone.error_rate),
                started_at=utc_now().isoformat(),
                key=key.decode() if key is not None else None,
                value=value.decode(),
                trace=TraceContext.under(span),
            )
            completion = await _retrying(lambda: self._dispatcher.start(job), "hand-off", job.id)
        if self._settings.durable:
            offsets.settle(position.offset)
        else:  # local mode: nothing survives a crash, so the offset waits for completion
            asyncio.ensure_future(completion).add_done_callback(
                lambda _: offsets.settle(position.offset)
            )

    async def _dead_letter(self, message: Message, position: SourcePosition, reason: str) -> None:
        headers = [*dead_letter_headers(reason, "InvalidRecord", position), *headers_from()]
        log.warning("dead-lettering invalid record", reason=reason, **position.model_dump())
        await _retrying(
            lambda: self._publisher.dead_letter(message.key(), message.value(), headers),
            "dead-letter",
            f"{position.topic}/{position.partition}/{position.offset}",
        )
        self._state.invalid += 1

    # ── back-pressure ───────────────────────────────────────────────────────

    async def _set_paused(self, paused: bool) -> None:
        if paused == self._state.paused:
            return
        partitions = [TopicPartition(t, p) for t, p in self._partitions]
        if partitions:
            await (self._consumer.pause if paused else self._consumer.resume)(partitions)
        self._state.paused = paused
        if paused:
            self._state.pauses += 1
        log.debug("partitions paused" if paused else "partitions resumed", in_flight=self._dispatcher.in_flight)

    async def _wait_for_slot(self) -> None:
        """Keep the group membership alive (poll) until a workflow frees a slot."""
        self._dispatcher.slot_freed.clear()
        while self._dispatcher.in_flight >= self._bound:
            message = await self._consumer.poll(0.1)
            if message is not None and not message.error():
                # Paused partitions deliver nothing; this one was assigned meanwhile. Put it back.
                await self._consumer.seek(
                    TopicPartition(message.topic(), message.partition(), message.offset())
                )
            try:
                await asyncio.wait_for(self._dispatcher.slot_freed.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
            await self.commit()

    # ── offsets ─────────────────────────────────────────────────────────────

    async def commit(self, partitions: list[Partition] | None = None) -> None:
        chosen = partitions if partitions is not None else list(self._partitions)
        pending = [
            (tp, position)
            for tp in chosen
            if (offsets := self._partitions.get(tp)) is not None
            and (position := offsets.committable()) is not None
        ]
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
        self._state.commits += 1

    # ── rebalances (called by the consumer, on the event loop) ──────────────

    async def _on_assign(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        self._state.joined = True
        for tp in partitions:
            self._partitions[(tp.topic, tp.partition)] = PartitionOffsets()
            self._state.assigned.add((tp.topic, tp.partition))
        await consumer.incremental_assign(partitions)
        if self._state.paused and partitions:
            await consumer.pause(partitions)
        log.info("partitions assigned", partitions=_names(partitions))

    async def _on_revoke(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        await self.commit(revoked)
        self._forget(revoked)
        await consumer.incremental_unassign(partitions)
        log.info("partitions revoked", partitions=_names(partitions))

    async def _on_lost(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        await consumer.incremental_unassign(partitions)
        log.warning("partitions lost", partitions=_names(partitions))

    def _forget(self, partitions: list[Partition]) -> None:
        for tp in partitions:
            self._partitions.pop(tp, None)
            self._state.assigned.discard(tp)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}/{tp.partition}" for tp in partitions]


async def _retrying[T](action: Callable[[], Awaitable[T]], what: str, subject: str) -> T:
    """Retry a hand-off or dead-letter write until it works: a dependency being down is no
    reason to drop a message. The partition waits meanwhile; nothing is committed past it."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=0.2, max=5),
        before_sleep=lambda state: log.warning(
            f"{what} failed; retrying",
            subject=subject,
            attempt=state.attempt_number,
            error=repr(state.outcome.exception()),
        ),
    ):
        with attempt:
            return await action()
    raise AssertionError("unreachable")
