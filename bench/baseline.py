"""The sequential reference worker the processor is compared with (head-of-line scenario).

A plain confluent-kafka consumer loop: one message at a time, the processor's own simulated
deletion (``SimulatedDeleter``, same batches, same sleeps, same retries), then a synchronous
publish of the same ``processed`` record and a synchronous commit. It reads the processor's
environment variables. Run as ``python -m bench.baseline``; ``BENCH_READY_FILE`` is touched once
the consumer has its partitions, and SIGTERM stops it after the current message.
"""

from __future__ import annotations

import time

from confluent_kafka import Message, Producer
from opentelemetry.trace import INVALID_SPAN

from bench.kafka_worker import Worker, serve
from tombstone_common.messages import ProcessedRecord, SourcePosition, parse_tombstone, utc_now
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


_deleter: SimulatedDeleter | None = None  # one for the process: it counts each step's attempts


def handle(worker: Worker, messages: list[Message]) -> None:
    global _deleter
    _deleter = _deleter or SimulatedDeleter(worker.settings, worker.settings.processor_name)
    (message,) = messages
    process(message, worker.settings, _deleter, worker.producer)
    worker.consumer.commit(message=message, asynchronous=False)


if __name__ == "__main__":
    serve(handle, batch=1)
