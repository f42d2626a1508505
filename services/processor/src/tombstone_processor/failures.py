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


def retrying(refusals: int, what: str, subject: str, backoff_max: float = 5.0) -> AsyncRetrying:
    """Retry with exponential backoff: transient failures for as long as it takes (the caller
    races them against the stop signal by cancelling), a refusal at most ``refusals`` times."""

    def refused_too_often(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        return error is not None and not is_transient(error) and state.attempt_number >= refusals

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception()
        log.warning(
            f"{what} failed; retrying",
            subject=subject,
            attempt=state.attempt_number,
            transient=is_transient(error),
            error=reason(error),
        )

    return AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        stop=refused_too_often,
        wait=wait_exponential(multiplier=0.2, max=backoff_max),
        before_sleep=log_retry,
        reraise=True,
    )
