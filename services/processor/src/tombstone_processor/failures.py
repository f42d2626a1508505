"""Which failures are worth retrying: a dependency that is away comes back, a refusal does not.
How they are retried is declared in retries.py."""

from __future__ import annotations

import asyncio
import aiohttp
from confluent_kafka import KafkaException
from resonate.error import ConnectorError, ServerError, StoppedError

from tombstone_common import kafka

#: HTTP statuses that say "later", not "no".
RETRY_LATER = {408, 425, 429}


def is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts, 5xx/429 from the server, Kafka errors that pass by themselves
    (classified by code: :func:`tombstone_common.kafka.kafka_error_passes`)."""
    if isinstance(error, ServerError):
        return error.code >= 500 or error.code in RETRY_LATER
    if isinstance(error, KafkaException):
        return bool(error.args) and kafka.kafka_error_passes(error.args[0])
    # StoppedError: a durable op skipped because an earlier one failed (or the SDK is stopping)
    return isinstance(
        error, ConnectorError | StoppedError | TimeoutError | asyncio.TimeoutError | aiohttp.ClientError | OSError
    )


def reason(error: BaseException) -> str:
    """One line for logs and dead-letter headers."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
