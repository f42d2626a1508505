"""The durable workflow: the original example's story, one Resonate workflow per tombstone.

Delete in batches (each batch a durable step, retried with backoff by Resonate), sleep durably
between batches, then publish the completion record. A restarted workflow replays its finished
steps from their stored results instead of running them again.

Version 3 can be cancelled (``record-admin cancel``): settling its sleep from outside wakes it,
and it publishes its completion record as ``cancelled`` instead of deleting on. Version 2 sleeps
on a promise that has only a deadline (:func:`sleep_until_deadline`) instead of the SDK's timer,
which the server re-offers to a processor once per lease for as long as the workflow sleeps;
version 1, for workflows started before it, keeps ``ctx.sleep``.
"""

# No ``from __future__ import annotations`` here: resonate-sdk inspects a step's signature on
# every ``ctx.run`` and evaluates string annotations each time (a tenth of the processor's CPU).

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry.trace import SpanKind, Status, StatusCode
from resonate.context import Context
from resonate.error import ApplicationError, PlatformError
from resonate.resonate import Resonate

from tombstone_common.messages import ProcessedRecord, SourcePosition, Tombstone, utc_now
from tombstone_common.telemetry import headers_from, kafka_attributes
from tombstone_processor.dead_letters import DeadLetter
from tombstone_processor.giving_up import GivingUp
from tombstone_processor.effects import Publisher
from tombstone_processor.failures import is_transient, reason
from tombstone_processor.ids import workflow_id
from tombstone_processor.mode import LOCAL, Mode
from tombstone_processor.refusals import StepRefusals
from tombstone_processor.retries import RetryBackoff
from tombstone_processor.simulation import BatchResult, SimulatedDeleter, Work
from tombstone_processor.tracing import TraceContext, emit_span, emit_workflow_span, step_span


@dataclass(frozen=True)
class Job:
    """The workflow's durable argument: everything it needs, fixed at hand-off. Data only."""

    id: str
    topic: str
    partition: int
    offset: int
    work: Work
    started_at: str
    key: str | None
    value: str
    trace: TraceContext
    generation: int = 0  # the n-th replay of its dead letter; absent in jobs of versions 1 and 2

    @classmethod
    def received(
        cls,
        tombstone: Tombstone,
        position: SourcePosition,
        key: bytes | None,
        value: bytes,
        trace: TraceContext,
        generation: int = 0,
    ) -> "Job":
        """The job of a record just taken from the tombstones topic."""
        return cls(
            id=tombstone.id,
            topic=position.topic,
            partition=position.partition,
            offset=position.offset,
            work=Work(batches=tombstone.batches, error_rate=tombstone.error_rate),
            started_at=utc_now().isoformat(),
            key=key.decode() if key is not None else None,
            value=value.decode(),
            trace=trace,
            generation=generation,
        )

    @property
    def workflow_id(self) -> str:
        return workflow_id(self.id, self.generation)

    @property
    def source(self) -> SourcePosition:
        return SourcePosition(topic=self.topic, partition=self.partition, offset=self.offset)

    def letter(self, why: str, error_class: str, attempts: int | None = None) -> DeadLetter:
        """The original record as a dead letter, with the reason."""
        return DeadLetter(
            key=self.key.encode() if self.key is not None else None,
            value=self.value.encode(),
            source=self.source,
            reason=why,
            error_class=error_class,
            attempts=attempts,
            generation=self.generation,
        )


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str  # "processed", "cancelled" or "dead-lettered"
    batches: int
    attempts: int


@dataclass(frozen=True)
class WorkflowConfig:
    batch_interval: timedelta
    retry: RetryBackoff
    publish_retry: RetryBackoff  # transient publish failures; a refusal is not retried
    processor: str
    mode: Mode = LOCAL


@dataclass(frozen=True)
class Dependencies:
    """What the steps use, registered once with ``resonate.with_dependency``."""

    config: WorkflowConfig
    deleter: SimulatedDeleter
    publisher: Publisher
    giving_up: GivingUp
    refusals: StepRefusals

    def forget(self, job: Job) -> None:
        """The workflow ended: drop what was kept about it."""
        self.deleter.forget(job.id)
        self.refusals.forget(job.workflow_id)


@dataclass
class GiveUp:
    """Why a workflow dead-letters its tombstone instead of publishing."""

    reason: str
    error_class: str


#: Where :func:`sleep_until_deadline` returns the value its promise was resolved with.
Sleep = Callable[[Context, timedelta], Awaitable[object]]

#: The key of the value ``record-admin cancel`` resolves a sleeping workflow's promise with.
CANCEL = "cancel"


def cancel_request(by: str) -> dict[str, str]:
    """What a cancelled workflow's sleep returns (``by``: who asked, for the record)."""
    return {CANCEL: by}


def is_cancel_request(woke: object) -> bool:
    return isinstance(woke, dict) and CANCEL in woke


async def sleep_until_deadline(ctx: Context, duration: timedelta) -> object:
    """Sleep durably on a promise that has nothing but a deadline.

    The SDK's ``ctx.sleep`` gives its timer promise a target so that the server schedules the
    wake; the target also makes the server dispatch a task for the timer at once, which
    resonate-sdk 0.8.1 acquires, finds not yet due and drops without releasing, so the server
    offers it again once per lease for as long as the workflow sleeps (with a 15 s lease, 10,000
    sleeping workflows cost ~670 acquisitions a second). A promise without a target has no task;
    the Resonate server (v0.9.8) settles it as timed out when its deadline passes, which resumes
    the workflow suspended on it. The start-up check proves the server does (server_check.py).

    Returns ``None`` when the deadline passed; the value when someone resolved the promise first
    (``record-admin cancel`` does, with :func:`cancel_request`)."""
    try:
        return await ctx.promise(timeout=duration)
    except ApplicationError:  # rejected as timed out: the deadline passed, which is the wake
        return None


async def cleanup_tombstone(ctx: Context, job: Job) -> Outcome:
    """Version 3: version 2, and a sleep resolved with a cancel request ends it as cancelled."""
    deps = ctx.get_dependency(Dependencies)
    sleep = sleep_until_deadline if deps.config.mode.deadline_sleeps else _sdk_sleep
    return await _ended(ctx, job, sleep, cancellable=True)


async def cleanup_tombstone_v2(ctx: Context, job: Job) -> Outcome:
    """Version 2, for workflows started before version 3: sleeps on a deadline-only promise
    (durable mode), cannot be cancelled."""
    deps = ctx.get_dependency(Dependencies)
    sleep = sleep_until_deadline if deps.config.mode.deadline_sleeps else _sdk_sleep
    return await _ended(ctx, job, sleep, cancellable=False)


async def cleanup_tombstone_v1(ctx: Context, job: Job) -> Outcome:
    """Version 1, for workflows started before version 2: sleeps on the SDK's timer."""
    return await _ended(ctx, job, _sdk_sleep, cancellable=False)


async def _sdk_sleep(ctx: Context, duration: timedelta) -> None:
    await ctx.sleep(duration)


async def _ended(ctx: Context, job: Job, sleep: Sleep, cancellable: bool) -> Outcome:
    deps = ctx.get_dependency(Dependencies)
    try:
        outcome = await _cleanup(ctx, job, sleep, cancellable)
    except PlatformError as exc:  # the server refused a durable step: reported, then re-raised
        await deps.refusals.refused(job, exc.cause)
        raise
    deps.forget(job)
    return outcome


async def _cleanup(ctx: Context, job: Job, sleep: Sleep, cancellable: bool) -> Outcome:
    """Delete in batches, sleeping between them, then publish; any failure dead-letters instead.
    ``cancellable``: a sleep that returns a cancel request ends the deletion, and the completion
    record says ``cancelled`` (version 3; earlier versions ran no such check, and replay as such).

    ``except Exception`` cannot catch the SDK's ``PlatformError`` or ``Suspended`` (both derive
    from ``BaseException``): a server that refuses or cannot store a step, and a workflow going to
    sleep, pass through untouched and never turn into a dead letter."""
    config = ctx.get_dependency(Dependencies).config
    batches = attempts = 0
    status = "processed"
    give_up: GiveUp | None = None
    try:
        slept_since: float | None = None
        while True:
            try:
                result = await ctx.options(retry_policy=config.retry).run(
                    delete_batch, job, batches + 1, slept_since
                )
            except Exception as exc:  # retries exhausted: a poison tombstone
                attempts += config.retry.attempts
                give_up = GiveUp(f"delete failed after {config.retry.attempts} attempts: {exc}", "DeleteFailed")
                break
            batches += 1
            attempts += result.attempts
            if result.done:
                break
            if config.batch_interval:
                slept_since = result.finished_at
                woke = await sleep(ctx, config.batch_interval)
                if cancellable and is_cancel_request(woke):
                    status = "cancelled"
                    break
        if give_up is None:
            try:
                refused = await ctx.options(retry_policy=config.publish_retry).run(
                    publish_processed, job, batches, attempts, status
                )
            except Exception as exc:  # transient failures outlasted the publish retries
                give_up = GiveUp(f"publish failed after {config.publish_retry.attempts} attempts: {exc}", "PublishFailed")
            else:
                if refused is not None:
                    give_up = GiveUp(f"publish refused: {refused}", "PublishRefused")
    except Exception as exc:  # anything else: a failure of the workflow itself
        give_up = GiveUp(f"workflow failed: {reason(exc)}", type(exc).__name__)
    if give_up is not None:
        await ctx.run(dead_letter, job, give_up.reason, give_up.error_class, batches, attempts)
        return Outcome(job.id, "dead-lettered", batches, attempts)
    return Outcome(job.id, status, batches, attempts)


async def delete_batch(ctx: Context, job: Job, batch: int, slept_since: float | None) -> BatchResult:
    return delete_attempt(ctx.get_dependency(Dependencies).deleter, job, ctx.info.id, batch, slept_since)


def delete_attempt(
    deleter: SimulatedDeleter, job: Job, step_id: str, batch: int, slept_since: float | None = None
) -> BatchResult:
    """One attempt at one batch, traced; raises ``DeleteError`` when it failed. The body of the
    ``delete_batch`` step, and what ``bench/baseline.py`` runs (its own retries instead of
    Resonate's), so the two cannot drift apart."""
    attempt = deleter.count_attempt(job.id, step_id)
    if slept_since is not None and attempt == 1:  # the durable sleep that ended just now
        emit_span("sleep", job.trace, slept_since, time.time(), **{"tombstone.id": job.id})
    with step_span("delete_batch", job.trace, **{"tombstone.id": job.id, "batch": batch, "attempt": attempt}):
        return deleter.delete_batch(step_id, job.id, batch, job.work, attempt)


async def publish_processed(
    ctx: Context, job: Job, batches: int, attempts: int, status: str = "processed"
) -> str | None:
    """Publish the completion record: ``None`` once the broker acknowledged it, the reason when
    the broker refused it for good (too large, not authorised, no such topic). A transient failure
    raises, and the step's retry policy tries again."""
    deps = ctx.get_dependency(Dependencies)
    record = ProcessedRecord(
        id=job.id,
        source=job.source,
        batches=batches,
        attempts=attempts,
        started_at=job.started_at,
        completed_at=utc_now(),
        processor=deps.config.processor,
        status=status,
        generation=job.generation,
    )
    with step_span(
        f"send {deps.publisher.topics.topic_processed}",
        job.trace,
        kind=SpanKind.PRODUCER,
        **kafka_attributes("send", deps.publisher.topics.topic_processed, job.id),
    ) as span:
        try:
            await deps.publisher.processed(record, headers_from())
        except Exception as exc:
            if is_transient(exc):
                raise
            span.set_status(Status(StatusCode.ERROR, reason(exc)))
            return reason(exc)
        span.set_attribute("tombstone.source.offset", job.offset)
    # Only now: a publish that failed and is retried must not have exported a workflow span.
    _emit_workflow(job, ok=True, batches=batches, attempts=attempts)
    return None


async def dead_letter(ctx: Context, job: Job, why: str, error_class: str, batches: int, attempts: int) -> None:
    deps = ctx.get_dependency(Dependencies)
    topic = deps.giving_up.dead_letters.topic
    with step_span(f"send {topic}", job.trace, kind=SpanKind.PRODUCER, **kafka_attributes("send", topic, job.id)):
        await deps.giving_up.workflow_gave_up(job, why, error_class, attempts)
    _emit_workflow(job, ok=False, batches=batches, attempts=attempts)


def _emit_workflow(job: Job, ok: bool, batches: int, attempts: int) -> None:
    started = datetime.fromisoformat(job.started_at).timestamp()
    emit_workflow_span(
        job.trace, started, ok, **{"tombstone.id": job.id, "batches": batches, "attempts": attempts}
    )


#: The name every version of the workflow is registered under.
WORKFLOW = "cleanup_tombstone"

#: Every version this code can run; new workflows start on the highest. A version's promises
#: store its number, and a resumed workflow replays its finished steps against the code
#: registered for that number, so the code of a registered version never changes. Changing the
#: workflow (steps added, removed, reordered, or their arguments) means a new entry here beside
#: the old one; see "Changing the workflow" in the README for the rule.
VERSIONS: dict[int, Callable[..., Awaitable[Outcome]]] = {
    1: cleanup_tombstone_v1,
    2: cleanup_tombstone_v2,
    3: cleanup_tombstone,
}

#: The first version that ``record-admin cancel`` can stop.
CANCELLABLE_FROM = 3


def register_workflows(resonate: Resonate) -> None:
    """Register every version explicitly, under one name."""
    for version, function in VERSIONS.items():
        resonate.register(function, name=WORKFLOW, version=version)


def start_version() -> int:
    """The version new workflows start on."""
    return max(VERSIONS)
