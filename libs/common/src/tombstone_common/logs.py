"""Structured logging: one JSON object per line, or readable text on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from tombstone_common.settings import BaseServiceSettings


# resonate-sdk logs four INFO lines for every durable step (promise create and settle, request
# and response) on this logger: eight rendered lines per 1-batch tombstone that say nothing the
# processor's own logs and metrics do not. Its event stream logs two INFO lines at every
# reconnect, which an idle stream does every RESONATE_STREAM_IDLE_SECONDS (failures to connect
# are warnings, and stay). Shown with LOG_LEVEL=DEBUG.
CHATTY_LIBRARY_LOGGERS = ("resonate.validation", "resonate.connections.sse")


def _add_trace_ids(_logger: object, _name: str, event: dict) -> dict:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(settings: BaseServiceSettings, service: str) -> None:
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    level = logging.getLevelName(settings.log_level)
    renderer = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (resonate, confluent-kafka) log through the standard library: same format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    for name in CHATTY_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
