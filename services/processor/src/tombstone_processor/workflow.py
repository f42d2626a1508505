"""The durable workflow: the original example's story, one Resonate workflow per tombstone.

Delete in batches (each batch a durable step, retried with backoff by Resonate), sleep durably
between batches, then publish the completion record. A restarted workflow replays its finished
steps from their stored results instead of running them again.
"""

# No ``from __future__ import annotations`` here: resonate-sdk inspects a step's signature on
# every ``ctx.run`` and evaluates string annotations each time (a tenth of the processor's CPU).

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry.trace import SpanKind
from resonate.context import Context
from resonate.error import PlatformError
from resonate.resonate import Resonate

from tombstone_common.messages import ProcessedRecord, SourcePosition, dead_letter_headers, utc_now
from tombstone_common.telemetry import headers_from, kafka_attributes
from tombstone_processor.effects import Publisher
from tombstone_processor.refusals import StepRefusals
from tombstone_processor.settings import SimulationSettings
from tombstone_processor.simulation import BatchResult, SimulatedDeleter, Work
from tombstone_processor.tracing import TraceContext, emit_span, emit_workflow_span, step_span


@dataclass(frozen=True)
class Job:
    """The workflow's durable argument: everything it needs, fixed at hand-off."""

    id: str
    topic: str
    partition: int
    offset: int
    work: Work
    started_at: str
    key: str | None
    value: str
    trace: TraceContext

    @property
    def source(self) -> SourcePosition:
        return SourcePosition(topic=self.topic, partition=self.partition, offset=self.offset)

    async def dead_letter(self, publisher: Publisher, reason: str, error_class: str, attempts: int) -> None:
        """Write the original record to the DLQ with the reason (in the current trace context)."""
        await publisher.dead_letter(
            self.key.encode() if self.key is not None else None,
            self.value.encode(),
            [*dead_letter_headers(reason, error_class, self.source, attempts), *headers_from()],
        )


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str  # "processed" or "dead-lettered"
    batches: int
    attempts: int


@dataclass(frozen=True)
class RetryBackoff:
    """Exponential backoff for a failing step; ``attempts`` counts the first try."""

    initial: float
    maximum: float
    attempts: int

    @classmethod
    def for_deletes(cls, settings: SimulationSettings) -> "RetryBackoff":
        """The policy of ``delete_batch`` (DELETE_RETRY_* and DELETE_MAX_ATTEMPTS)."""
        return cls(
            initial=settings.delete_retry_initial_seconds,
            maximum=settings.delete_retry_max_seconds,
            attempts=settings.delete_max_attempts,
        )

    def next(self, attempt: int) -> float | None:
        if attempt >= self.attempts:
            return None
        return min(self.initial * 2 ** (attempt - 1), self.maximum)


@dataclass(frozen=True)
class WorkflowConfig:
    batch_interval: timedelta
    retry: RetryBackoff
    processor: str


@dataclass(frozen=True)
class Dependencies:
    """What the steps use, registered once with ``resonate.with_dependency``."""

    config: WorkflowConfig
    deleter: SimulatedDeleter
    publisher: Publisher
    refusals: StepRefusals


async def cleanup_tombstone(ctx: Context, job: Job) -> Outcome:
    try:
        return await _cleanup(ctx, job)
    except PlatformError as exc:  # the server refused a durable step: reported, then re-raised
        await ctx.get_dependency(Dependencies).refusals.refused(job, exc.cause)
        raise


async def _cleanup(ctx: Context, job: Job) -> Outcome:
    config = ctx.get_dependency(Dependencies).config
    batches = attempts = 0
    slept_since: float | None = None
    while True:
        try:
            result = await ctx.options(retry_policy=config.retry).run(
                delete_batch, job, batches + 1, slept_since
            )
        except Exception as exc:  # retries exhausted: a poison tombstone
            attempts += config.retry.attempts
            reason = f"delete failed after {config.retry.attempts} attempts: {exc}"
            await ctx.run(dead_letter, job, reason, batches, attempts)
            return Outcome(job.id, "dead-lettered", batches, attempts)
        batches += 1
        attempts += result.attempts
        if result.done:
            break
        if config.batch_interval:
            slept_since = result.finished_at
            await ctx.sleep(config.batch_interval)
    await ctx.run(publish_processed, job, batches, attempts)
    return Outcome(job.id, "processed", batches, attempts)


async def delete_batch(ctx: Context, job: Job, batch: int, slept_since: float | None) -> BatchResult:
    deleter = ctx.get_dependency(Dependencies).deleter
    attempt = deleter.count_attempt(ctx.info.id)
    if slept_since is not None and attempt == 1:  # the durable sleep that ended just now
        emit_span("sleep", job.trace.workflow(), slept_since, time.time(), **{"tombstone.id": job.id})
    with step_span("delete_batch", job.trace, **{"tombstone.id": job.id, "batch": batch, "attempt": attempt}):
        return deleter.delete_batch(ctx.info.id, job.id, batch, job.work, attempt)


async def publish_processed(ctx: Context, job: Job, batches: int, attempts: int) -> None:
    deps = ctx.get_dependency(Dependencies)
    record = ProcessedRecord(
        id=job.id,
        source=job.source,
        batches=batches,
        attempts=attempts,
        started_at=job.started_at,
        completed_at=utc_now(),
        processor=deps.config.processor,
    )
    with step_span(
        f"send {deps.publisher.topics.topic_processed}",
        job.trace,
        kind=SpanKind.PRODUCER,
        **kafka_attributes("send", deps.publisher.topics.topic_processed, job.id),
    ) as span:
        await deps.publisher.processed(record, headers_from())
        span.set_attribute("tombstone.source.offset", job.offset)
    # Only now: a publish that failed and is retried must not have exported a workflow span.
    _emit_workflow(job, ok=True, batches=batches, attempts=attempts)


async def dead_letter(ctx: Context, job: Job, reason: str, batches: int, attempts: int) -> None:
    publisher = ctx.get_dependency(Dependencies).publisher
    with step_span(f"send {publisher.topics.topic_dlq}", job.trace, kind=SpanKind.PRODUCER,
                   **kafka_attributes("send", publisher.topics.topic_dlq, job.id)):
        await job.dead_letter(publisher, reason, "DeleteFailed", attempts)
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
VERSIONS: dict[int, Callable[..., Awaitable[Outcome]]] = {1: cleanup_tombstone}


def register_workflows(resonate: Resonate) -> None:
    """Register every version explicitly, under one name."""
    for version, function in VERSIONS.items():
        resonate.register(function, name=WORKFLOW, version=version)


def start_version() -> int:
    """The version new workflows start on."""
    return max(VERSIONS)
