"""Which failures are worth retrying: a dependency that is away comes back, a refusal does not."""

from __future__ import annotations

import asyncio
import aiohttp
from confluent_kafka import KafkaException
from resonate.error import ConnectorError, ServerError, StoppedError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from tombstone_common import kafka
from tombstone_common.logs import get_logger

log = get_logger(__name__)

#: HTTP statuses that say "later", not "no".
RETRY_LATER = {408, 425, 429}


def is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts, 5xx/429 from the server, Kafka errors that pass by themselves
    (classified by code: :func:`tombstone_common.kafka.is_transient`)."""
    if isinstance(error, ServerError):
        return error.code >= 500 or error.code in RETRY_LATER
    if isinstance(error, KafkaException):
        return bool(error.args) and kafka.is_transient(error.args[0])
    # StoppedError: a durable op skipped because an earlier one failed (or the SDK is stopping)
    return isinstance(
        error, ConnectorError | StoppedError | TimeoutError | asyncio.TimeoutError | aiohttp.ClientError | OSError
    )


def reason(error: BaseException) -> str:
    """One line for logs and dead-letter headers."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


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
