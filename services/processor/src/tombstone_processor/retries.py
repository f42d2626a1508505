"""Every retry policy of the processor, in one place.

With tenacity (a loop that awaits something of ours until it succeeds):

- :func:`retrying`: a hand-off, the server check, rejecting a workflow given up on. Transient
  failures (failures.is_transient) for as long as it takes (the caller stops it by cancelling),
  a refusal at most ``refusals`` times, with exponential backoff from 0.2 s up to 5 s.
- :func:`until_accepted`: a dead letter, for as long as it takes (giving up would lose it).

For Resonate (the SDK retries a failing step itself, and replays the retries durably):

- :class:`RetryBackoff`: the ``delete_batch`` and ``publish_processed`` steps' policies.

Elsewhere, on purpose: ``wait_for_broker`` (tombstone_common.kafka, shared by every command) and
the event stream's restart (sdk/event_stream.py: a fixed delay, as long as the processor runs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_exponential

from tombstone_common.logs import get_logger
from tombstone_processor.failures import is_transient, reason
from tombstone_processor.settings import SimulationSettings

log = get_logger(__name__)


BACKOFF_FIRST_SECONDS = 0.2


def retrying(refusals: int, what: str, subject: str, backoff_max: float = 5.0, failed: int = 0) -> AsyncRetrying:
    """Retry with exponential backoff: transient failures for as long as it takes (the caller
    races them against the stop signal by cancelling), a refusal at most ``refusals`` times.
    ``failed``: attempts the caller already made (and saw fail) before this loop, so that the
    count, the log and the backoff go on from there (see :func:`first_failed`)."""

    def refused_too_often(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        return error is not None and not is_transient(error) and state.attempt_number + failed >= refusals

    def log_retry(state: RetryCallState) -> None:
        log_failure(what, subject, state.attempt_number + failed, state.outcome.exception())

    return AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        stop=refused_too_often,
        wait=wait_exponential(multiplier=BACKOFF_FIRST_SECONDS * 2**failed, max=backoff_max),
        before_sleep=log_retry,
        reraise=True,
    )


def log_failure(what: str, subject: str, attempt: int, error: BaseException) -> None:
    log.warning(f"{what} failed; retrying", subject=subject, attempt=attempt, transient=is_transient(error),
                error=reason(error))


async def first_failed(error: Exception, refusals: int, what: str, subject: str) -> None:
    """A first attempt made outside :func:`retrying` failed (a hot path that usually succeeds at
    once, for which tenacity's iteration costs more CPU than the work): raise ``error`` when the
    policy would not retry it, else log it and wait the first backoff, as :func:`retrying` does;
    the caller then goes on with ``retrying(..., failed=1)``."""
    if not is_transient(error) and refusals <= 1:
        raise error
    log_failure(what, subject, 1, error)
    await asyncio.sleep(BACKOFF_FIRST_SECONDS)


def until_accepted(initial: float, maximum: float) -> AsyncRetrying:
    """Every failure is retried, with exponential backoff from ``initial`` up to ``maximum``
    seconds, without end; what to log and count per failure is the caller's."""
    return AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        stop=stop_never,
        wait=wait_exponential(multiplier=initial, max=maximum),
        reraise=True,
    )


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

    @classmethod
    def lasting(cls, seconds: float, initial: float = 0.5, maximum: float = 30.0) -> "RetryBackoff":
        """As many attempts as it takes for the delays between them to add up to ``seconds``."""
        attempts, waited = 1, 0.0
        while waited < seconds:
            waited += min(initial * 2 ** (attempts - 1), maximum)
            attempts += 1
        return cls(initial=initial, maximum=maximum, attempts=attempts)

    def next(self, attempt: int) -> float | None:
        if attempt >= self.attempts:
            return None
        return min(self.initial * 2 ** (attempt - 1), self.maximum)
