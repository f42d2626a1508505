"""The durable workflow: the original example's story, one Resonate workflow per tombstone.

Delete in batches (each batch a durable step, retried with backoff by Resonate), sleep durably
between batches, then publish the completion record. A restarted workflow replays its finished
steps from their stored results instead of running them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from resonate.context import Context

from tombstone_common.messages import (
    ProcessedRecord,
    SourcePosition,
    dead_letter_headers,
    utc_now,
)
from tombstone_processor.effects import Publisher
from tombstone_processor.simulation import BatchResult, SimulatedDeleter, Work


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


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str  # "processed" or "dead-lettered"
    batches: int
    attempts: int


@dataclass(frozen=True)
class RetryBackoff:
    """Exponential backoff for a failing batch; ``attempts`` counts the first try."""

    initial: float
    maximum: float
    attempts: int

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


async def cleanup_tombstone(ctx: Context, job: Job) -> Outcome:
    config = ctx.get_dependency(Dependencies).config
    batches = attempts = 0
    while True:
        try:
            result = await ctx.options(retry_policy=config.retry).run(
                delete_batch, job.id, batches + 1, job.work
            )
        except Exception as exc:  # retries exhausted: a poison tombstone
            attempts += config.retry.attempts
            await ctx.run(dead_letter, job, f"delete failed after {attempts} attempts: {exc}", attempts)
            return Outcome(job.id, "dead-lettered", batches, attempts)
        batches += 1
        attempts += result.attempts
        if result.done:
            break
        if config.batch_interval:
            await ctx.sleep(config.batch_interval)
    await ctx.run(publish_processed, job, batches, attempts)
    return Outcome(job.id, "processed", batches, attempts)


async def delete_batch(ctx: Context, tombstone_id: str, batch: int, work: Work) -> BatchResult:
    deleter = ctx.get_dependency(Dependencies).deleter
    return deleter.delete_batch(ctx.info.id, tombstone_id, batch, work)


async def publish_processed(ctx: Context, job: Job, batches: int, attempts: int) -> None:
    deps = ctx.get_dependency(Dependencies)
    record = ProcessedRecord(
        id=job.id,
        source=SourcePosition(topic=job.topic, partition=job.partition, offset=job.offset),
        batches=batches,
        attempts=attempts,
        started_at=job.started_at,
        completed_at=utc_now(),
        processor=deps.config.processor,
    )
    await deps.publisher.processed(record)


async def dead_letter(ctx: Context, job: Job, reason: str, attempts: int) -> None:
    source = SourcePosition(topic=job.topic, partition=job.partition, offset=job.offset)
    headers = dead_letter_headers(reason, "DeleteFailed", source, attempts)
    await ctx.get_dependency(Dependencies).publisher.dead_letter(
        job.key.encode() if job.key is not None else None, job.value.encode(), headers
    )
