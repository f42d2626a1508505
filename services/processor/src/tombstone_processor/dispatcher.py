"""Starting workflows and following them to completion, at most one run per tombstone id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from resonate.resonate import Resonate

from tombstone_common.logs import get_logger
from tombstone_processor.state import ProcessorState
from tombstone_processor.workflow import Job, Outcome, cleanup_tombstone

log = get_logger(__name__)


class Dispatcher:
    """Hands jobs to Resonate and counts the workflows this processor has in flight."""

    def __init__(self, resonate: Resonate, state: ProcessorState) -> None:
        self._resonate = resonate
        self._state = state
        self._running: dict[str, asyncio.Task[None]] = {}
        self.slot_freed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def start(self, job: Job) -> Awaitable[None]:
        """Start (or join) the workflow for ``job.id``; return once its promise exists.

        With a Resonate server, the promise is durable when this returns, so the Kafka
        offset may be committed. The returned awaitable completes with the workflow.
        """
        running = self._running.get(job.id)
        if running is not None:
            self._state.duplicates += 1
            return running
        handle = self._resonate.run(job.id, cleanup_tombstone, job)
        completion = asyncio.create_task(self._follow(job.id, handle.result(), time.monotonic()))
        self._running[job.id] = completion
        self._state.workflow_started()
        try:
            await handle.id()
        except BaseException:
            completion.cancel()
            raise
        return completion

    async def _follow(self, tombstone_id: str, result: Awaitable[Outcome], since: float) -> None:
        try:
            outcome = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._state.failed += 1
            log.error("workflow failed", id=tombstone_id, error=repr(exc))
        else:
            self._state.workflow_seconds.observe(time.monotonic() - since)
            if outcome.status == "processed":
                self._state.completed += 1
            else:
                self._state.dead_lettered += 1
            log.info(
                "workflow finished",
                id=tombstone_id,
                status=outcome.status,
                batches=outcome.batches,
                attempts=outcome.attempts,
            )
        finally:
            del self._running[tombstone_id]
            self._state.workflow_ended()
            self.slot_freed.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every workflow in flight; True if all ended."""
        pending = list(self._running.values())
        if not pending:
            return True
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return not still_running

    def abandon(self) -> None:
        """Stop following the workflows in flight (they go on elsewhere when durable)."""
        for task in list(self._running.values()):
            task.cancel()
