"""The Kafka floor: what the broker spends when the pipeline's records go through with no
workflow at all — consume a tombstone, produce its ``processed`` record, commit.

Batched as a careful hand-written worker would be, with the project's own client settings
(``consumer_config``, ``producer_config``): take what the consumer has (up to 500), produce one
record each, wait for the broker's acknowledgements, then commit the batch. It reads a
processor's environment. Run as ``python -m bench.kafka_floor``; ``BENCH_READY_FILE`` is touched
once the consumer has its partitions, and SIGTERM stops it after the current batch.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from tombstone_common.kafka import consumer_config, producer_config
from tombstone_common.messages import ProcessedRecord, SourcePosition, parse_tombstone, utc_now
from tombstone_common.settings import load_settings
from tombstone_processor.settings import ProcessorSettings

BATCH = 500


def main() -> None:
    settings = load_settings(ProcessorSettings)
    ready = Path(os.environ["BENCH_READY_FILE"])
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
            messages = [m for m in consumer.consume(BATCH, timeout=0.1) if not m.error()]
            if not messages:
                continue
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
                producer.produce(settings.topic_processed, key=tombstone.id, value=record.to_value())
            if producer.flush(30):
                raise RuntimeError("processed records not delivered")
            after = {(m.topic(), m.partition()): m.offset() + 1 for m in messages}  # in order: the last wins
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in after.items()], asynchronous=False)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
