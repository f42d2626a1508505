"""Kafka client failures against the real broker: a fatal client error ends the processor, a
failed delivery keeps librdkafka's error."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError

from harness.kafka import read_all
from harness.topics import create_topics
from tests.support.pipeline import processor_settings
from tombstone_common.kafka import AsyncProducer, DeliveryFailed
from tombstone_common.settings import PipelineSettings
from tombstone_processor.app import Processor

pytestmark = pytest.mark.integration


async def test_a_fatal_kafka_client_error_ends_the_processor_with_a_non_zero_status(kafka, names, tmp_path, capsys):
    create_topics(kafka.bootstrap, names, partitions=1)
    processor = Processor(processor_settings(kafka.bootstrap, names, tmp_path))
    stopping = asyncio.Event()
    run = asyncio.create_task(processor.run(stopping))
    await asyncio.wait_for(processor.ready.wait(), 60)
    # What librdkafka hands error_cb when a client is fenced; from its own thread, as librdkafka does.
    fenced = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
    await asyncio.to_thread(processor.kafka_errors, fenced)
    await asyncio.to_thread(processor.kafka_errors, fenced)  # reported once
    assert await asyncio.wait_for(run, 60) == 1
    fatal_lines = [line for line in capsys.readouterr().out.splitlines() if "fatal Kafka client error" in line]
    assert len(fatal_lines) == 1 and "_FENCED" in fatal_lines[0]


async def test_a_failed_delivery_keeps_the_kafka_error(kafka, names, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    settings = PipelineSettings(kafka_bootstrap_servers=kafka.bootstrap, _env_file=None)
    producer = AsyncProducer(settings, **{"message.max.bytes": 1000})
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await producer.send(names["TOPIC_PROCESSED"], b"x" * 5000, key="big")
    finally:
        await asyncio.to_thread(producer.close, 5)
    assert failed.value.error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert not failed.value.error.retriable() and not failed.value.error.fatal()


async def test_a_record_alone_goes_at_once_and_overlapping_records_are_batched(kafka, names):
    """One at a time the producer does not linger (low latency); once records overlap it batches
    them (fewer produce requests at the pipeline's rate); every record is delivered either way."""
    create_topics(kafka.bootstrap, names, partitions=1)
    settings = PipelineSettings(kafka_bootstrap_servers=kafka.bootstrap, _env_file=None)
    producer = AsyncProducer(settings)
    topic = names["TOPIC_PROCESSED"]
    try:
        for number in range(3):
            await producer.send(topic, b"alone", key=f"alone-{number}")
            assert not producer.batching, "a record sent alone must not wait for a batch"
        delivered = await asyncio.gather(*(producer.send(topic, b"busy", key=f"busy-{n}") for n in range(50)))
        assert producer.batching, "overlapping records must be batched"
    finally:
        await asyncio.to_thread(producer.close, 5)
    assert len(delivered) == 50 and all(message.error() is None for message in delivered)
    stored = read_all(kafka.bootstrap, topic)
    assert sorted(record.key for record in stored) == sorted(
        [f"alone-{n}" for n in range(3)] + [f"busy-{n}" for n in range(50)]
    )
