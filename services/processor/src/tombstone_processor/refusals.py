"""Workflows whose steps the server refuses do not spin.

When the server refuses a step (a 4xx, a value it cannot take), the SDK releases the workflow's
task and the server offers it again at once, forever. The workflow reports each refusal here;
after ``limit`` of them this processor dead-letters the tombstone with the reason and rejects the
workflow's promise, so the server stops offering it and whoever awaits it learns why.
"""

from __future__ import annotations

from collections import Counter

from resonate.promises import Promises
from resonate.types import Value

from tombstone_common.logs import get_logger
from tombstone_processor.effects import Publisher
from tombstone_processor.failures import is_transient, reason, write_or_give_up

log = get_logger(__name__)


class StepRefused(Exception):
    """The rejection of a workflow given up on; its tombstone is in the dead-letter topic."""


class StepRefusals:
    def __init__(self, limit: int, publisher: Publisher) -> None:
        self._limit = limit
        self._publisher = publisher
        self._promises: Promises | None = None
        self._counts: Counter[str] = Counter()

    def bind(self, promises: Promises) -> None:
        self._promises = promises

    async def refused(self, job, error: BaseException) -> None:  # job: workflow.Job
        if is_transient(error) or self._promises is None:
            return
        self._counts[job.id] += 1
        count = self._counts[job.id]
        log.warning("the server refused a step of the workflow", id=job.id, refusal=count, error=reason(error))
        if count < self._limit:
            return
        why = f"the server refused a workflow step {count} times: {reason(error)}"
        log.error("giving up on the workflow; dead-lettering its tombstone", id=job.id, error=why)
        await write_or_give_up(
            lambda: job.dead_letter(self._publisher, why, type(error).__name__, count), self._limit, "dead-letter", job.id
        )
        promises = self._promises
        await write_or_give_up(
            lambda: promises.reject(job.id, Value(data=StepRefused(why))), self._limit, "reject workflow", job.id
        )
        del self._counts[job.id]
