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


def test_the_summary_is_one_line_however_narrow_the_output(monkeypatch, capfd):
    """Read by line from a pod's log (80 columns, no terminal): the ids, then one summary line."""
    from typer.testing import CliRunner

    from tombstone_producer import cli

    def fake_produce(settings, tombstones, rate, progress):
        report = DeliveryReport(delivered=len(tombstones), seconds=0.54)
        report.partitions.update({p: 4 for p in range(6)})
        return report

    monkeypatch.setattr(cli, "produce", fake_produce)
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)  # keep the session's log set-up
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("COLUMNS", "60")
    result = CliRunner().invoke(cli.app, ["-n", "24", "--prefix", "ts-unit", "--print-ids"])
    assert result.exit_code == 0, result.output
    err = capfd.readouterr().err + getattr(result, "stderr", "")
    summary = [line for line in err.splitlines() if line.startswith("produced ")]
    assert summary and summary[0].endswith("p5:4)"), err
    ids = [line for line in result.stdout.splitlines() if line.startswith("ts-unit-")]
    assert ids == [f"ts-unit-{n:06d}" for n in range(1, 25)]
