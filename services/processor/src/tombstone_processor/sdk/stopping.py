"""Stopping the SDK's client without losing finished steps, and without error lines for the
executions a stop cuts short (resonate-sdk 0.8.1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from resonate.connections import SSEConnection
from resonate.resonate import Resonate

from tombstone_common.logs import get_logger
from tombstone_processor.failures import reason

log = get_logger(__name__)


async def finish_running_steps(resonate: Resonate, grace: float) -> bool:
    """Stop taking tasks from the server, then give the steps already running up to ``grace``
    seconds to finish and record their results; False if some were still running then.

    resonate-sdk 0.8.1's ``Resonate.stop()`` closes its HTTP transport *before* it joins the
    jobs in flight, so a step that finishes during ``stop()`` cannot record its result: its
    task's lease lapses and another processor runs the finished step again (the cluster tier saw
    batches re-run one lease after a rolling restart). Hence the task sources (the server's push
    stream) stop first and the transport stays open while the jobs finish. Uses two private
    attributes of the pinned SDK (``_connections``, ``_runtime.bg_tasks``); ``stop()`` follows.
    """
    for connection in resonate._connections:  # noqa: SLF001
        if isinstance(connection, SSEConnection):
            await connection.stop()
    deadline = time.monotonic() + grace
    running = resonate._runtime.bg_tasks  # noqa: SLF001
    while running and (left := deadline - time.monotonic()) > 0:
        await asyncio.wait(set(running), timeout=left)
        await asyncio.sleep(0)  # let finished jobs discard themselves
    if running:
        log.warning("grace period over with steps still running; they run again elsewhere", steps=len(running))
    return not running


class _CutShort(logging.Filter):
    """resonate-sdk reports, at error level, each execution that a stop cuts short: a step whose
    result cannot be recorded while the server is away, a task it cannot release once its
    transport is closed. While the processor stops these are expected, not errors: the task's
    lease lapses and the workflow resumes on another processor (the step in flight runs once
    more). They are logged as one warning line each, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("resonate") and record.levelno >= logging.ERROR:
            cause = f" ({reason(record.exc_info[1])})" if record.exc_info and record.exc_info[1] else ""
            record.msg = f"{record.getMessage()}{cause}; stopping: it resumes elsewhere after its lease"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextlib.contextmanager
def executions_cut_short_are_warnings():
    """While the processor stops, see :class:`_CutShort`."""
    cut_short = _CutShort()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(cut_short)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(cut_short)

