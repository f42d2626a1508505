"""Workflows whose steps the server refuses do not spin.

When the server refuses a step (a 4xx, a value it cannot take), the SDK releases the workflow's
task and the server offers it again at once, forever. The workflow reports each refusal here;
after ``limit`` of them this processor dead-letters the tombstone with the reason and rejects the
workflow's promise, so the server stops offering it and whoever awaits it learns why. The promise
is rejected only after the dead letter was acknowledged: the tombstone is never in neither place.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from resonate.promises import Promises
from resonate.types import Value

from tombstone_common.logs import get_logger
from tombstone_processor.giving_up import GivingUp, Letterable
from tombstone_processor.failures import is_transient, reason
from tombstone_processor.retries import retrying

log = get_logger(__name__)


class StepRefused(Exception):
    """The rejection of a workflow given up on; its tombstone is in the dead-letter topic."""


class Refusable(Letterable, Protocol):  # the workflow's Job, as far as refusals need it
    @property
    def workflow_id(self) -> str: ...


class StepRefusals:
    def __init__(self, limit: int, giving_up: GivingUp) -> None:
        self._limit = limit
        self._giving_up = giving_up
        self._promises: Promises | None = None
        self._counts: Counter[str] = Counter()

    def bind(self, promises: Promises) -> None:
        self._promises = promises

    def forget(self, workflow_id: str) -> None:
        self._counts.pop(workflow_id, None)

    async def refused(self, job: Refusable, error: BaseException) -> None:
        if is_transient(error) or self._promises is None:
            return
        self._counts[job.workflow_id] += 1
        count = self._counts[job.workflow_id]
        log.warning("the server refused a step of the workflow", id=job.id, refusal=count, error=reason(error))
        if count < self._limit:
            return
        why = f"the server refused a workflow step {count} times: {reason(error)}"
        await self._giving_up.steps_refused(job, why, error, count)
        promises = self._promises
        try:
            async for attempt in retrying(self._limit, "reject workflow", job.id):
                with attempt:
                    await promises.reject(job.workflow_id, Value(data=StepRefused(why)))
        except Exception as exc:  # the tombstone is in the DLQ; the server keeps offering the task
            log.error("could not reject the workflow's promise", id=job.id, error=reason(exc))
        self.forget(job.workflow_id)
