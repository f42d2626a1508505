"""Reading and writing test topics on the real broker, with deadlines instead of sleeps."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, Producer, TopicPartition


@dataclass
class Record:
    key: str | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int

    def json(self) -> dict:
        return json.loads(self.value)


def produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]], partition: int | None = None) -> list[tuple[int, int]]:
    """Produce ``(key, value)`` pairs in order; return each record's (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    positions: list[tuple[int, int] | None] = [None] * len(records)

    def remember(index: int):
        def on_delivery(error, message: Message) -> None:
            assert error is None, error
            positions[index] = (message.partition(), message.offset())
        return on_delivery

    for index, (key, value) in enumerate(records):
        extra = {"partition": partition} if partition is not None else {}
        producer.produce(topic, key=key, value=value, on_delivery=remember(index), **extra)
    assert producer.flush(30) == 0
    return positions  # type: ignore[return-value]


def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Record]], bool],
    timeout: float = 120.0,
) -> list[Record]:
    """Read ``topic`` from the beginning until ``done(records)`` holds; fail at the deadline."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met after {timeout}s with {len(records)} records")
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            records.append(
                Record(
                    key=message.key().decode() if message.key() is not None else None,
                    value=message.value(),
                    headers={k: v for k, v in (message.headers() or [])},
                    partition=message.partition(),
                    offset=message.offset(),
                )
            )
    finally:
        consumer.close()
    return records


def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Record]:
    """Everything currently on ``topic`` (up to the high watermark of every partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-hw-{uuid.uuid4().hex}"})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in metadata.partitions
    }
    consumer.close()
    total = sum(ends.values())

    return read_until(bootstrap, topic, lambda records: len(records) >= total, timeout)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    consumer.close()
    return {tp.partition: tp.offset for tp in offsets}
