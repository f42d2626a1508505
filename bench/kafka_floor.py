"""The Kafka floor: what the broker spends when the pipeline's records go through with no
workflow at all — consume a tombstone, produce its ``processed`` record, commit.

Batched as a careful hand-written worker would be, with the project's own client settings
(``consumer_config``, ``producer_config``): take what the consumer has (up to 500), produce one
record each, wait for the broker's acknowledgements, then commit the batch. It reads a
processor's environment. Run as ``python -m bench.kafka_floor``; ``BENCH_READY_FILE`` is touched
once the consumer has its partitions, and SIGTERM stops it after the current batch.
"""

from __future__ import annotations

from confluent_kafka import Message, TopicPartition

from bench.kafka_worker import Worker, serve
from tombstone_common.messages import ProcessedRecord, SourcePosition, parse_tombstone, utc_now

BATCH = 500


def handle(worker: Worker, messages: list[Message]) -> None:
    """One ``processed`` record per tombstone, all acknowledged, then the batch committed."""
    settings = worker.settings
    for message in messages:
        started = utc_now()
        tombstone = parse_tombstone(message.key(), message.value(), settings.processor_max_record_bytes)
        record = ProcessedRecord(
            id=tombstone.id,
            source=SourcePosition(topic=message.topic(), partition=message.partition(), offset=message.offset()),
            batches=1,
            attempts=1,
            started_at=started,
            completed_at=utc_now(),
            processor=settings.processor_name,
        )
        worker.producer.produce(settings.topic_processed, key=tombstone.id, value=record.to_value())
    if worker.producer.flush(30):
        raise RuntimeError("processed records not delivered")
    after = {(m.topic(), m.partition()): m.offset() + 1 for m in messages}  # in order: the last wins
    worker.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in after.items()], asynchronous=False)


if __name__ == "__main__":
    serve(handle, BATCH)
