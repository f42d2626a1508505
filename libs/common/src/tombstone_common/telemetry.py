"""OpenTelemetry tracing, configured from the standard ``OTEL_*`` variables.

A tracer provider is always installed, so every record the services write carries a valid W3C
``traceparent``; spans are *exported* only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
traces-specific endpoint) is set and ``OTEL_TRACES_EXPORTER`` is not ``none``. Code on a hot path
asks :func:`spans_received` and skips making spans that no span processor would receive.

Kafka headers carry the context between services (the stock confluent-kafka instrumentation only
*links* consumer spans, so propagation is done here by hand), and workflow arguments carry it
across crashes: a resumed workflow's spans join the trace it started in.
"""

from __future__ import annotations

import contextvars
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext

from tombstone_common.messages import Headers

_provider: TracerProvider | None = None
_preset_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("preset_span_id", default=None)


class _PresetIdGenerator(RandomIdGenerator):
    """Random ids, except where :func:`span_with_id` fixes the id of the span being created."""

    def generate_span_id(self) -> int:
        preset = _preset_span_id.get()
        return preset if preset is not None else super().generate_span_id()


class KnowsItsReceivers(TracerProvider):
    """Knows whether any span processor will receive its spans."""

    receiving = False

    def add_span_processor(self, span_processor) -> None:  # noqa: ANN001 (the SDK's own type)
        super().add_span_processor(span_processor)
        self.receiving = True


def spans_received() -> bool:
    """Whether a span processor (an exporter, a test's in-memory one) receives this process's
    spans. Without one a span costs its making and goes nowhere."""
    return _provider is not None and _provider.receiving


def tracing_exported() -> bool:
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(service: str) -> None:
    global _provider
    if _provider is not None:
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    resource = Resource.create(
        {"service.name": name, "service.instance.id": f"{socket.gethostname()}-{os.getpid()}"}
    )
    _provider = KnowsItsReceivers(resource=resource, id_generator=_PresetIdGenerator())
    if tracing_exported():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def new_span_id() -> int:
    return RandomIdGenerator().generate_span_id()


@contextmanager
def span_with_id(span_id: int) -> Iterator[None]:
    """Spans started inside get ``span_id``: lets a span be emitted after its children."""
    token = _preset_span_id.set(span_id)
    try:
        yield
    finally:
        _preset_span_id.reset(token)


# ── carrying context in Kafka headers and in durable arguments ──────────────



def headers_from(context: otel_context.Context | None = None) -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(key, value.encode()) for key, value in carrier.items()]


def context_from_headers(headers: Headers | None) -> otel_context.Context:
    carrier = {key: value.decode(errors="replace") for key, value in headers or () if value is not None}
    return propagate.extract(carrier)


def carrier_for(span_context: SpanContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(span_context)))
    return carrier


def context_from_carrier(carrier: dict[str, str]) -> otel_context.Context:
    return propagate.extract(carrier)


def child_context(parent: SpanContext, span_id: int) -> SpanContext:
    """The context of a span (not yet emitted) with ``span_id`` under ``parent``'s trace; it keeps
    the parent's sampling decision, so an unsampled trace stays unsampled in every child."""
    return SpanContext(
        parent.trace_id, span_id, is_remote=True, trace_flags=parent.trace_flags, trace_state=parent.trace_state
    )


class Messaging:
    """Messaging semantic-convention attribute names."""

    SYSTEM = "messaging.system"
    DESTINATION = "messaging.destination.name"
    OPERATION = "messaging.operation.type"
    PARTITION = "messaging.destination.partition.id"
    OFFSET = "messaging.kafka.offset"
    KEY = "messaging.kafka.message.key"
    GROUP = "messaging.consumer.group.name"


def kafka_attributes(operation: str, topic: str, key: str | None = None, **more: object) -> dict[str, object]:
    """The messaging attributes of a Kafka ``send`` or ``process`` span (``more``: already named)."""
    attributes: dict[str, object] = {
        Messaging.SYSTEM: "kafka",
        Messaging.DESTINATION: topic,
        Messaging.OPERATION: operation,
    }
    if key is not None:
        attributes[Messaging.KEY] = key
    return attributes | more
