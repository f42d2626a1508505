"""The sequential reference worker the processor is compared with (head-of-line scenario).

A plain confluent-kafka consumer loop: one message at a time, the processor's own simulated
deletion (``SimulatedDeleter``, same batches, same sleeps, same retries), then a synchronous
publish of the same ``processed`` record and a synchronous commit. It reads the processor's
environment variables. Run as ``python -m bench.baseline``; ``BENCH_READY_FILE`` is touched once
the consumer has its partitions, and SIGTERM stops it after the current message.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer
from opentelemetry.trace import INVALID_SPAN

from tombstone_common.kafka import consumer_config, producer_config
from tombstone_common.messages import ProcessedRecord, SourcePosition, parse_tombstone, utc_now
from tombstone_common.settings import load_settings
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.simulation import BatchResult, DeleteError, SimulatedDeleter
from tombstone_processor.tracing import TraceContext
from tombstone_processor.workflow import Job, RetryBackoff, delete_attempt


def delete_batch(deleter: SimulatedDeleter, retry: RetryBackoff, job: Job, batch: int) -> BatchResult:
    """The workflow's own delete attempt, retried here as Resonate retries the step."""
    step_id = f"{job.id}:{batch}"
    while True:
        try:
            return delete_attempt(deleter, job, step_id, batch)
        except DeleteError as error:
            delay = retry.next(error.attempt)
            if delay is None:
                raise
            time.sleep(delay)


def process(message: Message, settings: ProcessorSettings, deleter: SimulatedDeleter, producer: Producer) -> None:
    tombstone = parse_tombstone(message.key(), message.value(), settings.processor_max_record_bytes)
    position = SourcePosition(topic=message.topic(), partition=message.partition(), offset=message.offset())
    job = Job.received(tombstone, position, message.key(), message.value(), TraceContext.under(INVALID_SPAN))
    retry = RetryBackoff.for_deletes(settings)
    batches = attempts = 0
    while True:
        result = delete_batch(deleter, retry, job, batches + 1)
        batches += 1
        attempts += result.attempts
        if result.done:
            break
        time.sleep(settings.delete_batch_interval_seconds)
    record = ProcessedRecord(
        id=tombstone.id,
        source=position,
        batches=batches,
        attempts=attempts,
        started_at=job.started_at,
        completed_at=utc_now(),
        processor=settings.processor_name,
    )
    producer.produce(settings.topic_processed, key=tombstone.id, value=record.to_value())
    if producer.flush(30):
        raise RuntimeError(f"processed record of {tombstone.id} not delivered")


def main() -> None:
    settings = load_settings(ProcessorSettings)
    ready = Path(os.environ["BENCH_READY_FILE"])
    deleter = SimulatedDeleter(settings, settings.processor_name)
    producer = Producer(producer_config(settings))
    consumer = Consumer(consumer_config(settings, settings.kafka_consumer_group))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([settings.topic_tombstones], on_assign=lambda *_: ready.touch())
    try:
        while not stopping:
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            process(message, settings, deleter, producer)
            consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
