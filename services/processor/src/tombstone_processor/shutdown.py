"""An orderly stop of one processor, every phase inside one deadline
(``PROCESSOR_SHUTDOWN_GRACE_SECONDS``), also when the server or the broker is away."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from confluent_kafka.aio import AIOConsumer
from resonate.resonate import Resonate

from tombstone_common.kafka import AsyncProducer
from tombstone_common.logs import get_logger
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.failures import reason
from tombstone_processor.intake import Intake
from tombstone_processor.mode import Mode
from tombstone_processor.sdk.stopping import executions_cut_short_are_warnings, finish_running_steps
from tombstone_processor.state import ProcessorState

log = get_logger(__name__)


@dataclass
class Parts:
    """What a stop closes; ``intake`` and ``consumer`` are None when it came before they existed."""

    intake: Intake | None
    dispatcher: Dispatcher
    consumer: AIOConsumer | None
    resonate: Resonate
    producer: AsyncProducer


async def shut_down(parts: Parts, mode: Mode, grace: float, state: ProcessorState, failed: bool) -> None:
    """Waiting for work (local workflows, running steps) ends early enough to leave the closing
    phases (commit, leaving the group, flushing the producer) a quarter of the grace period, at
    least a second; the producer is flushed whatever went wrong before. ``failed``: the process
    stops on an error, and waits for no work."""
    deadline = Deadline(grace, closing=min(grace, max(1.0, grace / 4)))
    log.info("processor stopping", in_flight=parts.dispatcher.in_flight, grace_seconds=grace)
    with executions_cut_short_are_warnings():
        try:
            if mode.drains_on_shutdown and not failed:
                # An unfinished local workflow is lost with the process, so finish what fits in
                # the grace period; the rest is redelivered (its offset stays uncommitted).
                if not await parts.dispatcher.drain(deadline.left_for_work()):
                    log.warning("grace period over; unfinished workflows will be redelivered")
            if parts.intake is not None:
                # Records whose hand-off has not finished are dropped: uncommitted, so redelivered.
                await parts.intake.stop()
                await deadline.run(parts.intake.commit(), "final offset commit")
            await parts.dispatcher.abandon()
            if parts.consumer is not None:
                await deadline.run(parts.consumer.close(), "leaving the consumer group")
            if mode.has_server and not failed:
                await finish_running_steps(parts.resonate, deadline.left_for_work())
            await deadline.run(parts.resonate.stop(), "stopping the Resonate client")
        except Exception as exc:  # the producer is flushed all the same
            log.warning("shutdown step failed", error=reason(exc))
        finally:
            undelivered = await asyncio.to_thread(parts.producer.close, max(deadline.left(), 0.1))
            if undelivered:
                log.warning("records not delivered before exit", count=undelivered)
    log.info("processor stopped", seconds=round(deadline.elapsed(), 2), **_summary(state))


class Deadline:
    """One shutdown deadline shared by every phase; its last ``closing`` seconds belong to the
    closing phases, which waiting for work must leave them."""

    def __init__(self, seconds: float, closing: float) -> None:
        self._started = time.monotonic()
        self._end = self._started + seconds
        self._closing = closing

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def left_for_work(self) -> float:
        return max(0.0, self._end - self._closing - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    async def run(self, work, what: str) -> None:
        """Await ``work`` for what is left; past that, give up on it (logged, not an error)."""
        try:
            await asyncio.wait_for(work, timeout=self.left())
        except TimeoutError:
            log.warning(f"{what} did not finish within the shutdown grace period")


def _summary(state: ProcessorState) -> dict[str, int]:
    return {
        "consumed": state.consumed,
        "started": state.started,
        "completed": state.completed,
        "dead_lettered": state.dead_lettered,
        "invalid": state.invalid,
        "failed": state.failed,
    }
