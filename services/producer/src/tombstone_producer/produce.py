"""Producing tombstones: ids, values, delivery accounting."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from tombstone_common.kafka import producer_config
from tombstone_common.messages import Tombstone
from tombstone_common.settings import PipelineSettings


def new_ids(count: int, prefix: str | None = None) -> list[str]:
    """``<prefix>-000001``…; a random prefix keeps repeated runs from reusing ids."""
    prefix = prefix or f"ts-{uuid.uuid4().hex[:8]}"
    width = max(6, len(str(count)))
    return [f"{prefix}-{n:0{width}d}" for n in range(1, count + 1)]


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)
    partitions: Counter[int] = field(default_factory=Counter)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed.append(f"{message.key()!r}: {error.str()}")
            return
        self.delivered += 1
        self.partitions[message.partition()] += 1
        self.positions[message.key().decode()] = (message.partition(), message.offset())


def produce(
    settings: PipelineSettings,
    tombstones: Iterable[Tombstone],
    rate: float | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> DeliveryReport:
    """Send every tombstone (key = id) and wait until the broker acknowledged all of them."""
    producer = Producer(producer_config(settings))
    report = DeliveryReport()
    started = time.monotonic()
    for sent, tombstone in enumerate(tombstones, start=1):
        if rate:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                producer.produce(
                    settings.topic_tombstones,
                    key=tombstone.id,
                    value=tombstone.to_value(),
                    on_delivery=report.on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
        progress(1)
    undelivered = producer.flush(60)
    if undelivered:
        report.failed.append(f"{undelivered} records still queued after 60s")
    report.seconds = time.monotonic() - started
    return report
