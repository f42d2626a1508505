"""Stand-ins for the clock, the consumer, the Resonate client and the publisher, for the intake's
failure cases: each records what the processor did and lets a test decide what the dependency
answers, and when time passes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, TopicPartition

from tombstone_common.kafka import DeliveryFailed
from tombstone_common.settings import TopicSettings
from tombstone_processor.dead_letters import DeadLetterMetrics, DeadLetters
from tombstone_processor.effects import Publisher
from tombstone_processor.giving_up import GiveUpMetrics, GivingUp
from tombstone_processor.mode import LOCAL, Mode
from tombstone_processor.workflow import Outcome


class FakeClock:
    """The intake's clock in unit tests: time passes only when it is advanced. A wait on it ends
    when one of its events is set or once the clock was advanced past its timeout."""

    def __init__(self) -> None:
        self.time = 0.0
        self._advanced = asyncio.Event()
        self._deadlines: list[float] = []

    def now(self) -> float:
        return self.time

    @property
    def waited_on(self) -> bool:
        """Someone waits for time to pass: a wait whose timeout has not passed yet."""
        return any(deadline > self.time for deadline in self._deadlines)

    def advance(self, seconds: float) -> None:
        self.time += seconds
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def first_of(self, *events: asyncio.Event, timeout: float) -> None:
        deadline = self.time + timeout
        self._deadlines.append(deadline)
        try:
            await asyncio.sleep(0)
            while self.time < deadline and not any(event.is_set() for event in events):
                waits = [asyncio.create_task(event.wait()) for event in (self._advanced, *events)]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
        finally:
            self._deadlines.remove(deadline)


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def key(self):
        return self._key

    def value(self):
        return self._value

    def headers(self):
        return []

    def error(self):
        return None


class FakeConsumer:
    """One topic; ``add`` queues records for ``consume``; ``commit`` remembers the offsets. A call
    that finds nothing to deliver takes its whole timeout, on ``clock``."""

    def __init__(self, topic: str = "tombstones", partitions: int = 1, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.topic = topic
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.queue: list[FakeMessage] = []
        self.next_offset = {p: 0 for p in range(partitions)}
        self.committed: dict[int, int] = {}
        self.polls = 0
        self.unwedged = asyncio.Event()  # cleared: consume does not return (a stuck client call)
        self.unwedged.set()
        self.paused_partitions: set[int] = set()  # paused partitions deliver nothing, as librdkafka's do
        self.callbacks = {}
        self.closed = False

    @classmethod
    def holding(cls, ids: Iterable[str]) -> FakeConsumer:
        """A consumer with a record queued for each of ``ids``."""
        consumer = cls()
        for tombstone_id in ids:
            consumer.add(tombstone_id)
        return consumer

    def add(self, tombstone_id: str | None, value: bytes | None = None, partition: int = 0) -> int:
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        value = value if value is not None else json.dumps({"id": tombstone_id}).encode()
        key = tombstone_id.encode() if tombstone_id is not None else None
        self.queue.append(FakeMessage(self.topic, partition, offset, key, value))
        return offset

    async def subscribe(self, topics, on_assign, on_revoke, on_lost):
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        await on_assign(self, self.partitions)

    async def lose_partitions(self):
        await self.callbacks["lost"](self, self.partitions)

    @property
    def paused(self) -> bool:
        return bool(self.paused_partitions)

    async def consume(self, num_messages, timeout):
        self.polls += 1
        await self.unwedged.wait()
        ready = [m for m in self.queue if m.partition() not in self.paused_partitions][:num_messages]
        if not ready:
            self.clock.advance(timeout)
            await asyncio.sleep(0)
            return []
        self.queue = [m for m in self.queue if m not in ready]
        return ready

    async def poll(self, timeout):
        (message,) = await self.consume(1, timeout) or [None]
        return message

    async def commit(self, offsets, asynchronous):
        for tp in offsets:
            self.committed[tp.partition] = tp.offset

    async def pause(self, partitions):
        self.paused_partitions |= {tp.partition for tp in partitions}

    async def resume(self, partitions):
        self.paused_partitions -= {tp.partition for tp in partitions}

    async def seek(self, partition):
        pass

    async def incremental_assign(self, partitions):
        pass

    async def incremental_unassign(self, partitions):
        pass

    async def close(self):
        self.closed = True


class FakeHandle:
    def __init__(self, created: asyncio.Future, result: asyncio.Future) -> None:
        self._created = created
        self._result = result

    async def id(self):
        await self._created

    async def result(self):
        return await asyncio.shield(self._result)


@dataclass
class FakeResonate:
    """``run`` answers what the test scripted for that id: a list of errors for the first
    attempts (then success); workflows finish when the test calls ``finish``."""

    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)  # ids whose create never answers (server away)
    runs: list[str] = field(default_factory=list)
    results: dict[str, asyncio.Future] = field(default_factory=dict)

    def options(self, **_):
        return self

    def run(self, tombstone_id, _function, job):
        self.runs.append(tombstone_id)
        loop = asyncio.get_running_loop()
        created = loop.create_future()
        if tombstone_id in self.hang:
            pass
        elif self.failures.get(tombstone_id):
            created.set_exception(self.failures[tombstone_id].pop(0))
        else:
            created.set_result(None)
        result = self.results.setdefault(tombstone_id, loop.create_future())
        return FakeHandle(created, result)

    def finish(self, tombstone_id: str) -> None:
        self.results[tombstone_id].set_result(Outcome(tombstone_id, "processed", 1, 1))


class RecordingPublisher(Publisher):
    def __init__(self) -> None:  # no Kafka: keep what would have been sent
        self.topics = TopicSettings(_env_file=None)
        self.records = []
        self.dead_letters = []

    async def processed(self, record, headers=()):
        self.records.append(record)

    async def dead_letter(self, key, value, headers):
        self.dead_letters.append((key, value, dict(headers)))


class RefusingPublisher(RecordingPublisher):
    """Refuses every dead letter (and, with ``refuse_processed``, every processed record) with
    ``error`` until the test clears ``refusing`` — a dead-letter topic whose limit is too low."""

    def __init__(self, error: KafkaError | None = None, refuse_processed: bool = False) -> None:
        super().__init__()
        self.error = error or KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
        self.refusing = True
        self.refuse_processed = refuse_processed
        self.refused = 0

    async def processed(self, record, headers=()):
        if self.refuse_processed:
            raise DeliveryFailed(self.error)
        await super().processed(record, headers)

    async def dead_letter(self, key, value, headers):
        if self.refusing:
            self.refused += 1
            raise DeliveryFailed(self.error)
        await super().dead_letter(key, value, headers)


def dead_letters_via(publisher: Publisher) -> DeadLetters:
    """The real dead-letter writer over ``publisher``, with backoffs short enough for unit tests."""
    return DeadLetters(publisher, DeadLetterMetrics(), backoff_initial=0.001, backoff_max=0.01, log_every=0)


def giving_up_via(publisher: Publisher, mode: Mode = LOCAL, metrics: GiveUpMetrics | None = None) -> GivingUp:
    """Giving up as the processor does, its letters through :func:`dead_letters_via`."""
    return GivingUp(dead_letters_via(publisher), mode, metrics or GiveUpMetrics())
