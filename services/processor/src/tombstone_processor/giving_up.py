"""Giving up on a tombstone, in one place: for each reason, its dead letter, whether its input
offset waits for the broker to acknowledge that letter, and the counters that say so.

=============================  ================================  ==============================
why                            who gives up                      the offset waits for the letter
=============================  ================================  ==============================
invalid record                 the intake                        yes: nothing else holds it
hand-off refused               the dispatcher                    yes: no workflow exists
workflow failed                the dispatcher, following it      in local mode (durable: it was
                                                                 committed at the hand-off)
deletion or publish failed     the workflow's ``dead_letter``    in local mode
                               step
steps refused by the server    :class:`~.refusals.StepRefusals`  no: the workflow exists
=============================  ================================  ==============================

A letter the broker refuses is retried until it is accepted (:class:`DeadLetters`): giving up on
it would lose the tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tombstone_common.logs import get_logger
from tombstone_common.messages import SourcePosition
from tombstone_processor.dead_letters import DeadLetter, DeadLetters
from tombstone_processor.failures import reason
from tombstone_processor.mode import Mode

log = get_logger(__name__)


@dataclass
class GiveUpMetrics:
    """Written by :class:`GivingUp` only."""

    invalid: int = 0  # invalid records dead-lettered by the intake
    failed: int = 0  # workflows that ended with an error (refused hand-off, rejected, refused steps)
    dead_lettered: int = 0  # workflows whose tombstone is in the dead-letter topic


class Letterable(Protocol):  # the workflow's Job, as far as giving up needs it
    id: str

    def letter(self, why: str, error_class: str, attempts: int | None = None) -> DeadLetter: ...


class GivingUp:
    def __init__(self, dead_letters: DeadLetters, mode: Mode, metrics: GiveUpMetrics) -> None:
        self.dead_letters = dead_letters
        self._mode = mode
        self.metrics = metrics

    async def invalid_record(
        self, key: bytes | None, value: bytes | None, position: SourcePosition, why: str, generation: int
    ) -> None:
        log.warning("dead-lettering invalid record", reason=why, **position.model_dump())
        letter = DeadLetter(key, value, position, why, "InvalidRecord", generation=generation)
        await self.dead_letters.write(letter, holds_offset=True)
        self.metrics.invalid += 1

    async def hand_off_refused(self, job: Letterable, error: BaseException, attempts: int) -> None:
        why = f"hand-off refused after {attempts} attempts: {reason(error)}"
        log.error("workflow could not be started; dead-lettering the tombstone", id=job.id, error=why)
        self.metrics.failed += 1
        await self.dead_letters.write(job.letter(why, type(error).__name__, attempts), holds_offset=True)
        self.metrics.dead_lettered += 1

    async def workflow_failed(self, job: Letterable, error: BaseException) -> None:
        """Its promise was rejected some other way than by giving up (a timeout, a bug)."""
        self.metrics.failed += 1
        why = f"workflow failed: {reason(error)}"
        log.error("workflow failed; dead-lettering its tombstone", id=job.id, error=why)
        await self.dead_letters.write(
            job.letter(why, type(error).__name__), holds_offset=self._mode.offset_waits_for_workflow
        )
        self.metrics.dead_lettered += 1

    async def workflow_gave_up(self, job: Letterable, why: str, error_class: str, attempts: int) -> None:
        """The workflow's own ``dead_letter`` step (its deletion or publish failed for good);
        counted where the workflow is followed (:meth:`gave_up`)."""
        await self.dead_letters.write(
            job.letter(why, error_class, attempts), holds_offset=self._mode.offset_waits_for_workflow
        )

    async def steps_refused(self, job: Letterable, why: str, error: BaseException, count: int) -> None:
        """The server refused the workflow's steps ``count`` times; counted where it is followed."""
        log.error("giving up on the workflow; dead-lettering its tombstone", id=job.id, error=why)
        await self.dead_letters.write(job.letter(why, type(error).__name__, count), holds_offset=False)

    def gave_up(self) -> None:
        """A followed workflow ended with its tombstone dead-lettered by its own step."""
        self.metrics.dead_lettered += 1

    def was_given_up_on(self, tombstone_id: str, why: str) -> None:
        """A followed workflow was rejected after refused steps (:meth:`steps_refused`)."""
        self.metrics.failed += 1
        self.metrics.dead_lettered += 1
        log.error("workflow refused by the server; tombstone dead-lettered", id=tombstone_id, error=why)
