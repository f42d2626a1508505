"""Producing tombstones: ids, values, delivery accounting."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import KafkaError, Message, Producer
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tombstone_common.kafka import describe, producer_config
from tombstone_common.messages import Tombstone
from tombstone_common.settings import PipelineSettings
from tombstone_common.telemetry import Messaging, headers_from, kafka_attributes, tracer

_tracer = tracer("tombstone_producer")


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

    def on_delivery(self, span: Span, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error.str()))
            span.end()
            self.failed.append(f"{message.key()!r}: {describe(error)}")
            return
        span.set_attribute(Messaging.PARTITION, str(message.partition()))
        span.set_attribute(Messaging.OFFSET, message.offset())
        span.end()
        self.delivered += 1
        self.partitions[message.partition()] += 1
        self.positions[message.key().decode()] = (message.partition(), message.offset())


def produce(
    settings: PipelineSettings,
    tombstones: Iterable[Tombstone],
    rate: float | None = None,
    progress: Callable[[int], None] = lambda _: None,
    producer: Producer | None = None,
) -> DeliveryReport:
    """Send every tombstone (key = id) and wait until the broker acknowledged all of them.

    ``producer``: one to reuse (already connected), instead of a new one for this call."""
    producer = producer or Producer(producer_config(settings))
    report = DeliveryReport()
    started = time.monotonic()
    for sent, tombstone in enumerate(tombstones, start=1):
        if rate:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        span = _tracer.start_span(
            f"send {settings.topic_tombstones}",
            kind=SpanKind.PRODUCER,
            attributes=kafka_attributes("send", settings.topic_tombstones, tombstone.id),
        )
        while True:
            try:
                producer.produce(
                    settings.topic_tombstones,
                    key=tombstone.id,
                    value=tombstone.to_value(),
                    headers=headers_from(trace.set_span_in_context(span)),
                    on_delivery=partial(report.on_delivery, span),
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
