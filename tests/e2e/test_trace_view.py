"""`devstack trace` (make trace) prints a tombstone's trace from a real Jaeger as a tree."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from devstack.procs import wait_until
from devstack.trace import find_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from harness.processes import BIN

pytestmark = pytest.mark.e2e
SECOND = 1_000_000_000  # ns


def tracer(jaeger, service: str, instance: str):
    provider = TracerProvider(resource=Resource.create(
        {"service.name": service, "service.instance.id": instance}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{jaeger.otlp_endpoint}/v1/traces")))
    return provider, provider.get_tracer("test")


def emit_tombstone_trace(jaeger, tombstone: str) -> None:
    """The shape the pipeline writes: producer send → process → workflow → steps, one failed."""
    producer, ptracer = tracer(jaeger, "producer", "host-p")
    processor, tracer_ = tracer(jaeger, "processor", "pod-a")
    t0 = time.time_ns() - 10 * SECOND
    send = ptracer.start_span("send tombstones", kind=SpanKind.PRODUCER, start_time=t0,
                              attributes={"messaging.kafka.message.key": tombstone})
    send.end(t0 + SECOND // 1000)
    process = tracer_.start_span("process tombstones", context=set_span_in_context(send),
                                 kind=SpanKind.CONSUMER, start_time=t0 + 2 * SECOND // 1000)
    process.end(t0 + 5 * SECOND // 1000)
    workflow = tracer_.start_span("workflow cleanup_tombstone", context=set_span_in_context(process),
                                  start_time=t0 + 4 * SECOND // 1000, attributes={"tombstone.id": tombstone})
    inside = set_span_in_context(workflow)
    failed = tracer_.start_span("delete_batch", context=inside, start_time=t0 + SECOND // 100,
                                attributes={"tombstone.id": tombstone, "batch": 1, "attempt": 1})
    failed.record_exception(RuntimeError("simulated delete failure"))
    failed.set_status(Status(StatusCode.ERROR, "simulated delete failure"))
    failed.end(t0 + 2 * SECOND // 100)
    retried = tracer_.start_span("delete_batch", context=inside, start_time=t0 + SECOND // 2,
                                 attributes={"tombstone.id": tombstone, "batch": 1, "attempt": 2})
    retried.end(t0 + SECOND // 2 + SECOND // 100)
    published = tracer_.start_span("send processed", context=inside, kind=SpanKind.PRODUCER,
                                   start_time=t0 + 3 * SECOND)
    published.end(t0 + 3 * SECOND + SECOND // 1000)
    workflow.end(t0 + 3 * SECOND + 2 * SECOND // 1000)
    for provider in (producer, processor):
        provider.shutdown()


def devstack_trace(jaeger, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "devstack"), "trace", *args, "--jaeger", jaeger.query_url],
                          capture_output=True, text=True, timeout=60, check=False, env={"COLUMNS": "200", "PATH": ""})


def test_trace_prints_the_span_tree_with_durations_processors_and_errors(jaeger) -> None:
    tombstone = f"view-{uuid.uuid4().hex[:8]}"
    emit_tombstone_trace(jaeger, tombstone)
    wait_until(lambda: len((find_trace(jaeger.query_url, tombstone) or {}).get("spans", [])) == 6,
               30, "the six spans in Jaeger")

    result = devstack_trace(jaeger, tombstone)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"tombstone {tombstone}" in lines[0] and "6 spans, 3.00 s, 1 with errors" in lines[0], lines[0]

    def line(start: str) -> tuple[int, str]:
        (found,) = [(i, text) for i, text in enumerate(lines) if start in text]
        return found

    def depth(text: str) -> int:
        return len(text) - len(text.lstrip(" │├└─"))

    send, process, workflow = line("send tombstones"), line("process tombstones"), line("workflow cleanup")
    first, second = line("attempt=1"), line("attempt=2")
    published = line("send processed")
    # parent before child, each child one level deeper; steps in start order
    assert send[0] < process[0] < workflow[0] < first[0] < second[0] < published[0]
    assert depth(send[1]) < depth(process[1]) < depth(workflow[1]) < depth(first[1])
    assert depth(first[1]) == depth(second[1]) == depth(published[1])
    assert "1.0 ms" in send[1] and "producer@host-p" in send[1]
    assert "3.00 s" in workflow[1] and "processor@pod-a" in workflow[1]
    assert "batch=1" in first[1] and "10.0 ms" in first[1]
    assert "✗ RuntimeError: simulated delete failure" in first[1]
    assert "✗" not in second[1] and "✗" not in workflow[1]


def test_trace_of_an_unknown_tombstone_fails_with_a_reason(jaeger) -> None:
    result = devstack_trace(jaeger, f"never-{uuid.uuid4().hex[:8]}")
    assert result.returncode == 1
    assert "no trace of never-" in result.stderr


def test_trace_without_jaeger_says_so() -> None:
    result = subprocess.run([str(BIN / "devstack"), "trace", "x", "--jaeger", "http://127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "no Jaeger answers" in result.stderr and "make jaeger" in result.stderr
