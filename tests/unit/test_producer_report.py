"""The producer says of each failed delivery whether it was refused or the broker was away."""

from __future__ import annotations

from confluent_kafka import KafkaError
from opentelemetry.trace import INVALID_SPAN

from tests.unit.fakes import FakeMessage
from tombstone_producer.produce import DeliveryReport


def test_a_failed_delivery_is_reported_with_its_class():
    report = DeliveryReport()
    message = FakeMessage("tombstones", 0, -1, b"ts-1", b"{}")
    report.on_delivery(INVALID_SPAN, KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), message)
    report.on_delivery(INVALID_SPAN, KafkaError(KafkaError._MSG_TIMED_OUT), message)
    assert report.delivered == 0
    assert report.failed[0].startswith("b'ts-1': TOPIC_AUTHORIZATION_FAILED (permanent)")
    assert report.failed[1].startswith("b'ts-1': _MSG_TIMED_OUT (transient)")
