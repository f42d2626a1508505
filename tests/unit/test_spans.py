"""The workflow's spans: emitted once, after the processed record was sent; an unsampled trace
stays unsampled in every child."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from confluent_kafka import KafkaError

from tests.unit.fakes import giving_up_via
from tombstone_common.kafka import DeliveryFailed
from tests.unit.test_workflow import Recorder, job, make_settings
from tombstone_common.telemetry import tracer
from tombstone_processor.resonate_client import build_resonate
from tombstone_processor.tracing import TraceContext
from tombstone_processor.workflow import cleanup_tombstone


@pytest.fixture(scope="module")
def exported() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


class FlakyRecorder(Recorder):
    """The first processed record times out (the broker away); Resonate retries the step."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    async def processed(self, record, headers=()):
        self.calls += 1
        if self.calls == 1:
            raise DeliveryFailed(KafkaError(KafkaError._MSG_TIMED_OUT))  # transient: retried
        await super().processed(record, headers)


async def run_under(settings, parent_span, publisher, tombstone_id):
    resonate = build_resonate(settings, publisher, giving_up_via(publisher))
    work = job(tombstone_id, batches=2)
    work = type(work)(**{**work.__dict__, "trace": TraceContext.under(parent_span)})
    try:
        return await resonate.run(work.id, cleanup_tombstone, work).result()
    finally:
        await resonate.stop()


def spans_of(exporter, trace_id):
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


async def test_the_workflow_span_is_emitted_once_after_the_processed_record_was_sent(tmp_path, exported):
    settings = make_settings(tmp_path, delete_error_rate=0)
    parent = tracer("tests").start_span("process tombstones")
    publisher = FlakyRecorder()
    outcome = await run_under(settings, parent, publisher, "spans-once")
    parent.end()
    assert outcome.status == "processed" and publisher.calls == 2

    spans = spans_of(exported, parent.get_span_context().trace_id)
    (workflow,) = [s for s in spans if s.name == "workflow cleanup_tombstone"]
    sends = sorted((s for s in spans if s.name == "send processed"), key=lambda s: s.end_time)
    assert len(sends) == 2 and not sends[0].status.is_ok, "the failed attempt has its own span"
    assert workflow.end_time >= sends[-1].end_time, "emitted after the record was sent"
    assert workflow.context.span_id == sends[-1].parent.span_id


async def test_an_unsampled_trace_stays_unsampled_in_every_child(tmp_path, exported):
    settings = make_settings(tmp_path, delete_error_rate=0)
    unsampled = NonRecordingSpan(
        SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    )
    outcome = await run_under(settings, unsampled, Recorder(), "spans-unsampled")
    assert outcome.status == "processed"
    assert spans_of(exported, 0x1234) == [], "no step, send or workflow span of an unsampled trace"


def test_steps_make_spans_only_where_a_span_processor_receives_them(monkeypatch, exported):
    """Without a receiver (no exporter) a step makes no span of its own, yet the context it makes
    current is the workflow span's: the same trace and sampled flag reach ``traceparent``."""
    from tombstone_common import telemetry
    from tombstone_common.telemetry import KnowsItsReceivers, headers_from
    from tombstone_processor import tracing
    from tombstone_processor.tracing import step_span

    provider = KnowsItsReceivers()
    assert not provider.receiving
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert provider.receiving

    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    context = TraceContext.under(parent)
    monkeypatch.setattr(tracing, "spans_received", lambda: False)
    assert not context.recorded
    with step_span("delete_batch", context) as span:
        assert not span.is_recording()
        (traceparent,) = [value.decode() for key, value in headers_from() if key == "traceparent"]
    assert traceparent == f"00-{0xABC:032x}-{context.workflow_span_id}-01"
    monkeypatch.setattr(tracing, "spans_received", lambda: True)
    assert context.recorded
    assert telemetry.spans_received(), "the tests' provider has the in-memory exporter of this module"
