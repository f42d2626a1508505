"""Spans of one tombstone's journey, kept in one trace across hand-off, sleeps and crashes.

The intake opens a ``process`` span and decides the id of the workflow span up front; both travel
in the workflow's durable arguments (:class:`TraceContext`). Steps hang their spans under that
workflow span whenever — and on whichever processor — they run, and the last step emits the
workflow span itself, with the id that its children already point to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from tombstone_common.logs import get_logger
from tombstone_common.telemetry import (
    carrier_for,
    child_context,
    context_from_carrier,
    new_span_id,
    span_with_id,
    spans_received,
    tracer,
)

_tracer = tracer("tombstone_processor")
log = get_logger(__name__)


@dataclass(frozen=True)
class TraceContext:
    """Durable: the ``process`` span's W3C carrier and the workflow span's id (hex)."""

    parent: dict[str, str]
    workflow_span_id: str

    @classmethod
    def under(cls, process_span: Span) -> TraceContext:
        return cls(carrier_for(process_span.get_span_context()), f"{new_span_id():016x}")

    # Parsed once per decoded job, not once per use (several per step); not durable fields.
    @cached_property
    def _process(self) -> Context:
        return context_from_carrier(self.parent)

    def process(self) -> Context:
        """The context of the ``process`` span, the workflow span's parent."""
        return self._process

    @property
    def valid(self) -> bool:
        return trace.get_current_span(self._process).get_span_context().is_valid

    @property
    def recorded(self) -> bool:
        """Whether spans of this trace are worth making here: it is sampled and this process's
        spans go somewhere. Otherwise the workflow span's context stands in for them (the same
        ids in ``traceparent``, the same sampled flag downstream)."""
        return self._sampled and spans_received()

    @cached_property
    def _sampled(self) -> bool:
        return trace.get_current_span(self._process).get_span_context().trace_flags.sampled

    @cached_property
    def _workflow(self) -> Context:
        if not self.valid:
            return Context()
        parent = trace.get_current_span(self._process).get_span_context()
        span_context = child_context(parent, int(self.workflow_span_id, 16))
        return trace.set_span_in_context(NonRecordingSpan(span_context))

    def workflow(self) -> Context:
        """A context whose current span is the workflow span (emitted later)."""
        return self._workflow

    def workflow_span(self) -> Span:
        return trace.get_current_span(self._workflow)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def emit_span(name: str, trace_context: TraceContext, start: float, end: float, **attributes: object) -> None:
    """A span under the workflow span that already ended (a durable sleep), if the trace is recorded."""
    if not trace_context.recorded:
        return
    span = _tracer.start_span(name, context=trace_context.workflow(), start_time=_ns(start), attributes=attributes)
    span.end(end_time=_ns(end))


@contextmanager
def step_span(name: str, trace_context: TraceContext, kind: SpanKind = SpanKind.INTERNAL, **attributes: object) -> Iterator[Span]:
    """A span under the workflow span, current inside the block (records written there carry it
    in ``traceparent``); a failure is recorded on it, logged, and re-raised (Resonate retries the
    step). Where its spans go nowhere (no exporter) or the trace is unsampled, the workflow span's
    context is made current instead: the same ids downstream, without the cost of a span nobody
    keeps (28 → 8 us a step)."""
    if trace_context.recorded:
        scope = _tracer.start_as_current_span(name, context=trace_context.workflow(), kind=kind, attributes=attributes)
    else:
        scope = trace.use_span(trace_context.workflow_span(), end_on_exit=False)
    with scope as span:
        try:
            yield span
        except Exception as exc:
            log.warning("step failed; Resonate retries it", step=name, error=str(exc), **{
                key.replace(".", "_"): value for key, value in attributes.items() if key.startswith(("tombstone", "batch", "attempt"))
            })
            raise


def emit_workflow_span(trace_context: TraceContext, started_at: float, ok: bool, **attributes: object) -> None:
    if not trace_context.valid or not trace_context.recorded:
        return
    with span_with_id(int(trace_context.workflow_span_id, 16)):
        span = _tracer.start_span(
            "workflow cleanup_tombstone", context=trace_context.process(), start_time=_ns(started_at),
            attributes=attributes,
        )
    if not ok:
        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
    span.end(end_time=_ns(time.time()))


def start_process_span(topic: str, parent: Context, **attributes: object) -> Span:
    """The ``process`` span of one record; its owner ends it once the record was handed off."""
    return _tracer.start_span(f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
