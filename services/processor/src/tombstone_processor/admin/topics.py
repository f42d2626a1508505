"""Reading a topic from its beginning to where it ended when the read began."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from tombstone_common.kafka import BrokerUnavailable, consumer_config, create_client, wait_for_broker
from tombstone_common.settings import KafkaSettings

#: How long a command waits for the broker before it says it is not there.
BROKER_WAIT_SECONDS = 10.0


class TopicMissing(Exception):
    pass


@dataclass(frozen=True)
class Record:
    """One record as read, with what the admin commands show of it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: datetime | None

    @classmethod
    def of(cls, message: Message) -> Record:
        kind, millis = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            headers=tuple((name, value or b"") for name, value in message.headers() or ()),
            timestamp=datetime.fromtimestamp(millis / 1000, UTC) if kind and millis >= 0 else None,
        )

    def header(self, name: str) -> str | None:
        for header, value in self.headers:
            if header == name:
                return value.decode(errors="replace")
        return None

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


def read_topic(
    settings: KafkaSettings,
    topic: str,
    progress: Callable[[int, int], None] | None = None,
    poll_seconds: float = 1.0,
) -> Iterator[Record]:
    """Every record of ``topic`` up to its end at the time of the call, partition by partition
    interleaved. ``progress(read, total)`` after each batch. Joins no group and commits nothing.

    :class:`BrokerUnavailable` when no broker answers, :class:`TopicMissing` for no such topic."""
    admin = wait_for_broker(settings, BROKER_WAIT_SECONDS)
    metadata = admin.list_topics(topic, timeout=BROKER_WAIT_SECONDS).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise TopicMissing(f"topic {topic} does not exist on {settings.kafka_bootstrap_servers}")
    consumer = create_client(Consumer, consumer_config(settings, f"record-admin-{uuid.uuid4().hex}", log_level=3))
    try:
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=BROKER_WAIT_SECONDS
            )
            if high > low:
                starts[partition], ends[partition] = low, high
        total = sum(ends[p] - starts[p] for p in ends)
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        read = 0
        while ends:
            for message in consumer.consume(num_messages=500, timeout=poll_seconds):
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition = message.partition()
                if partition not in ends:
                    continue
                read += 1
                yield Record.of(message)
                if message.offset() + 1 >= ends[partition]:
                    del ends[partition]
            if progress is not None:
                progress(read, total)
    finally:
        consumer.close()


__all__ = ["BROKER_WAIT_SECONDS", "BrokerUnavailable", "Record", "TopicMissing", "read_topic"]
