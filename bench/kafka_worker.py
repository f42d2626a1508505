"""What the Kafka-only reference workers share (``baseline.py``, ``kafka_floor.py``): the
processor's settings from the environment, the project's Kafka clients, a consume loop that hands
each batch to the worker, ``BENCH_READY_FILE`` touched once the consumer has its partitions, and
SIGTERM, which stops the loop after the current batch."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer

from tombstone_common.kafka import consumer_config, producer_config
from tombstone_common.settings import load_settings
from tombstone_processor.settings import ProcessorSettings


@dataclass
class Worker:
    settings: ProcessorSettings
    producer: Producer
    consumer: Consumer


def serve(handle: Callable[[Worker, list[Message]], None], batch: int) -> None:
    """Consume up to ``batch`` records at a time and ``handle`` them, until SIGTERM."""
    settings = load_settings(ProcessorSettings)
    ready = Path(os.environ["BENCH_READY_FILE"])
    worker = Worker(
        settings, Producer(producer_config(settings)), Consumer(consumer_config(settings, settings.kafka_consumer_group))
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    worker.consumer.subscribe([settings.topic_tombstones], on_assign=lambda *_: ready.touch())
    try:
        while not stopping:
            messages = [m for m in worker.consumer.consume(batch, timeout=0.1) if not m.error()]
            if messages:
                handle(worker, messages)
    finally:
        worker.consumer.close()
