"""Starting workflows and following them to completion, at most one run per tombstone id.

The dispatcher counts the workflows in flight (from the moment a hand-off begins until the
workflow ends) and owns every workflow metric. A hand-off that fails transiently (server away,
5xx, 429) is retried with backoff for as long as it takes; one the server refuses (4xx, a value
that cannot be serialised, an unknown function) is tried ``refusals`` times and then the tombstone
is dead-lettered with the reason: its offset settles once the broker acknowledged the dead letter.
A workflow that fails (its promise rejected, whatever the reason) is dead-lettered here too, unless
it was given up on with its tombstone already in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from resonate.resonate import Resonate

from tombstone_common.logs import get_logger
from tombstone_processor.giving_up import GivingUp
from tombstone_processor.failures import reason
from tombstone_processor.retries import first_failed, retrying
from tombstone_processor.mode import Mode
from tombstone_processor.refusals import StepRefused
from tombstone_processor.state import WorkflowMetrics
from tombstone_processor.workflow import WORKFLOW, Job, Outcome, start_version

log = get_logger(__name__)

#: Hand-offs (promise creations) in flight at once. A burst of records — a backlog, a rebalance —
#: would otherwise open thousands of requests to the server at the same instant; each holds its
#: buffers until answered, and the process keeps that peak as its resident size.
HANDOFF_CONCURRENCY = 64


@dataclass
class Workflow:
    """One tombstone's workflow as this processor sees it.

    ``created`` resolves once the workflow's promise exists (or the tombstone was dead-lettered
    instead): the moment its offset may be committed in durable mode. ``finished`` resolves when
    the workflow ended (completed, dead-lettered or failed); it is cancelled, never resolved, when
    this processor merely stopped following it."""

    job: Job
    created: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    finished: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    task: asyncio.Task[None] | None = None


class Dispatcher:
    """Hands jobs to Resonate and counts the workflows this processor has in flight."""

    def __init__(
        self,
        resonate: Resonate,
        metrics: WorkflowMetrics,
        giving_up: GivingUp,
        refusals: int,
        mode: Mode,
        backoff_max: float = 5.0,
    ) -> None:
        self._resonate = resonate
        self._starts = resonate.options(version=start_version())  # made once: options() copies the client
        self.metrics = metrics
        self._giving_up = giving_up
        self._refusals = refusals
        self._mode = mode
        self._backoff_max = backoff_max
        self._running: dict[str, Workflow] = {}
        self._handing_off = asyncio.Semaphore(HANDOFF_CONCURRENCY)
        self.slot_freed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def admit(self, job: Job) -> Workflow:
        """Take ``job`` into a slot now and start handing it off in the background.

        The same id while its workflow is still in flight here joins it (a redelivery)."""
        running = self._running.get(job.workflow_id)
        if running is not None:
            self.metrics.duplicates += 1
            return running
        workflow = Workflow(job)
        self._running[job.workflow_id] = workflow
        self.metrics.in_flight = len(self._running)
        self.metrics.max_in_flight_seen = max(self.metrics.max_in_flight_seen, self.in_flight)
        workflow.task = asyncio.create_task(self._run(workflow), name=f"workflow {job.id}")
        workflow.task.add_done_callback(_log_failure)
        return workflow

    async def _run(self, workflow: Workflow) -> None:
        job = workflow.job
        since = time.monotonic()
        try:
            try:
                handle = await self._hand_off(job)
            except Exception as exc:  # refused for good: the DLQ takes the tombstone
                await self._giving_up.hand_off_refused(job, exc, self._refusals)
                workflow.created.set_result(None)
                workflow.finished.set_result(None)
                return
            self.metrics.started += 1
            workflow.created.set_result(None)
            await self._follow(job, handle.result(), since)
            workflow.finished.set_result(None)
        finally:
            for future in (workflow.created, workflow.finished):
                future.cancel()  # no-op once resolved
            del self._running[job.workflow_id]
            self.metrics.in_flight = len(self._running)
            self.slot_freed.set()

    async def _hand_off(self, job: Job):
        """``resonate.run`` until the promise exists; transient failures retry without limit. The
        first attempt, nearly always the only one, runs outside the retry loop (its iteration
        cost more CPU than the start itself)."""
        try:
            return await self._start(job)
        except Exception as error:  # noqa: BLE001 (the policy decides)
            await first_failed(error, self._refusals, "hand-off", job.id)
        async for attempt in retrying(self._refusals, "hand-off", job.id, self._backoff_max, failed=1):
            with attempt:
                self.metrics.handoff_retries += 1
                return await self._start(job)
        raise AssertionError("unreachable")

    async def _start(self, job: Job):
        async with self._handing_off:
            handle = self._starts.run(job.workflow_id, WORKFLOW, job)
            await handle.id()
        return handle

    async def _follow(self, job: Job, result: Awaitable[Outcome], since: float) -> None:
        tombstone_id = job.id
        try:
            outcome = await result
        except asyncio.CancelledError:
            raise
        except StepRefused as exc:  # given up on; its tombstone was dead-lettered
            self._giving_up.was_given_up_on(tombstone_id, str(exc))
            return
        except Exception as exc:  # rejected some other way (a timeout, a bug): the DLQ takes it
            await self._giving_up.workflow_failed(job, exc)
            return
        self.metrics.workflow_seconds.observe(time.monotonic() - since)
        if outcome.status == "processed":
            self.metrics.completed += 1
        elif outcome.status == "cancelled":
            self.metrics.cancelled += 1
        else:
            self._giving_up.gave_up()
        log.info(
            "workflow finished",
            id=tombstone_id,
            status=outcome.status,
            batches=outcome.batches,
            attempts=outcome.attempts,
        )

    async def released(self, workflow: Workflow) -> None:
        """Return once the input offset of ``workflow`` may be committed: when its promise exists
        (durable), or when it ended (local mode: nothing of it survives a crash before that)."""
        # shield: a caller that stops waiting must not cancel the dispatcher's own futures
        await asyncio.shield(workflow.created)
        if self._mode.offset_waits_for_workflow:
            await asyncio.shield(workflow.finished)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every workflow in flight; True if all ended."""
        pending = [w.task for w in self._running.values() if w.task is not None]
        if not pending:
            return True
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return not still_running

    async def abandon(self) -> None:
        """Stop following the workflows in flight (they go on elsewhere when durable); a
        hand-off still in progress is dropped, and its record redelivered."""
        tasks = [w.task for w in self._running.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    """A workflow's task must not fail silently (an exception would surface only at collection)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("following a workflow failed", task=task.get_name(), error=reason(task.exception()))
