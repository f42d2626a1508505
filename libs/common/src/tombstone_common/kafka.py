"""Kafka clients configured once for every service.

:func:`producer_config` and :func:`consumer_config` hold the settings this pipeline relies on
(idempotent producer, manual commits); :class:`AsyncProducer` turns delivery reports into
awaitables so asyncio code can wait for a record to be durably on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from tombstone_common.settings import KafkaSettings

Headers = Sequence[tuple[str, bytes]]


# librdkafka's own log lines go through Python logging (same format as ours), not raw stderr.
CLIENT_LOGGER = logging.getLogger("librdkafka")


def client_config(settings: KafkaSettings, **extra: Any) -> dict[str, Any]:
    return {**settings.kafka_client_config(), "logger": CLIENT_LOGGER, **extra}


def producer_config(settings: KafkaSettings, **extra: Any) -> dict[str, Any]:
    return {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        **extra,
    }


def consumer_config(settings: KafkaSettings, group_id: str, **extra: Any) -> dict[str, Any]:
    return {
        **client_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    }


#: Errors that the same record will meet again, however often it is sent: it is too large, we are
#: not allowed to write there, the topic does not exist, the broker rejects the record itself.
#: Only a person (or a different record) changes the answer.
PERMANENT_CODES = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.TOPIC_EXCEPTION,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_TIMESTAMP,
    KafkaError.INVALID_REQUIRED_ACKS,
    KafkaError.POLICY_VIOLATION,
    KafkaError._INVALID_ARG,
})


def is_transient(error: KafkaError) -> bool:
    """Classify by error code, not by ``error.retriable()``: librdkafka does not set that flag on
    delivery reports, so a delivery that timed out during a broker restart would look permanent.
    A fatal error is permanent, and so is a code in ``PERMANENT_CODES``; any other is transient
    (a broker restarting, a leader or coordinator moving, too few in-sync replicas for a moment,
    a quota; callers that retry bound the time they spend on it)."""
    if error.fatal() or error.code() in PERMANENT_CODES:
        return False
    return True


def describe(error: KafkaError) -> str:
    """``MSG_SIZE_TOO_LARGE (permanent): Broker: Message size too large`` — for logs and probes."""
    return f"{error.name()} ({'transient' if is_transient(error) else 'permanent'}): {error.str()}"


class DeliveryFailed(KafkaException):
    """The broker did not take a record; ``error`` is librdkafka's :class:`KafkaError`
    (:func:`is_transient` tells a broker that is away from one that refuses)."""

    @property
    def error(self) -> KafkaError:
        return self.args[0]

    def __str__(self) -> str:
        return describe(self.error)


FatalHandler = Callable[[KafkaError], None]


class ClientErrors:
    """librdkafka's ``error_cb`` for every client of one process.

    Most client errors are transient (a broker away, a timed-out request) and the client recovers
    by itself; librdkafka logs them. A *fatal* one (a fenced idempotent producer, a fenced static
    group member) leaves the client unusable: it goes to ``on_fatal``, once, which should make the
    process exit non-zero so that it is restarted, instead of retrying forever."""

    def __init__(self, on_fatal: FatalHandler) -> None:
        self._on_fatal = on_fatal
        self._reported = threading.Event()

    def __call__(self, error: KafkaError) -> None:
        if error.fatal() and not self._reported.is_set():
            self._reported.set()
            self._on_fatal(error)

    async def from_asyncio(self, error: KafkaError) -> None:
        """The same callback for :mod:`confluent_kafka.aio` clients, which await it."""
        self(error)


#: How long the batching producer of :class:`AsyncProducer` gathers records into one request.
BATCH_LINGER_MS = 50
#: When a record is sent while this many await the broker's acknowledgement, :class:`AsyncProducer`
#: batches for the next ``BATCH_HOLD_SECONDS`` (renewed each time it happens again).
BATCH_FROM_AWAITING = 2
BATCH_HOLD_SECONDS = 1.0


class AsyncProducer:
    """An idempotent producer whose :meth:`send` resolves once the broker acknowledged.

    It batches at the rate it is used. Records sent one at a time go out at once (``linger.ms``
    0: a lone record is not held back for a batch that will not come). Once records overlap (one
    is sent while ``BATCH_FROM_AWAITING`` await their acknowledgement), it batches: records join a
    request that leaves every ``BATCH_LINGER_MS``, for as long as they keep overlapping and
    ``BATCH_HOLD_SECONDS`` after, so that at the pipeline's full rate the broker gets one produce
    request for many records instead of one each. librdkafka's linger is fixed per producer, hence
    two, each with its own delivery thread. Their order is not kept across the two, which no
    topic here relies on (one record per key and outcome)."""

    def __init__(self, settings: KafkaSettings, **extra: Any) -> None:
        self._eager = Producer(producer_config(settings, **{"linger.ms": 0, **extra}))
        self._batched = Producer(producer_config(settings, **{"linger.ms": BATCH_LINGER_MS, **extra}))
        self._awaiting = 0  # sends not acknowledged yet (read and written on the event loop only)
        self._batching_until = 0.0
        self._closed = threading.Event()
        self._pollers = [
            threading.Thread(target=self._poll, args=(producer,), name=f"kafka-producer-poll-{name}", daemon=True)
            for name, producer in (("eager", self._eager), ("batched", self._batched))
        ]
        for poller in self._pollers:
            poller.start()

    def _poll(self, producer: Producer) -> None:
        while not self._closed.is_set():
            producer.poll(0.1)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> Message:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[Message] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, delivered, error, message)

        now = time.monotonic()
        if self._awaiting >= BATCH_FROM_AWAITING:
            self._batching_until = now + BATCH_HOLD_SECONDS
        producer = self._batched if self.batching else self._eager
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=list(headers or ()), on_delivery=on_delivery
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then try again
                await asyncio.sleep(0.05)
            except KafkaException as exc:  # refused before it was queued (too large, fatal state)
                raise DeliveryFailed(exc.args[0]) from None
        self._awaiting += 1
        try:
            return await delivered
        finally:
            self._awaiting -= 1

    @property
    def batching(self) -> bool:
        """Whether the next record joins a batch (records overlap) rather than going at once."""
        return time.monotonic() < self._batching_until

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for queued records; returns how many are still undelivered."""
        deadline = time.monotonic() + timeout
        left = self._eager.flush(timeout)
        return left + self._batched.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 10.0) -> int:
        """Flush for up to ``timeout`` seconds, then stop; returns how many records were not delivered."""
        undelivered = self.flush(timeout)
        self._closed.set()
        for poller in self._pollers:
            poller.join(timeout)
        return undelivered


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(DeliveryFailed(error))
    else:
        future.set_result(message)


class BrokerUnavailable(Exception):
    pass


def wait_for_broker(settings: KafkaSettings, timeout: float) -> AdminClient:
    """Return an admin client once the cluster answers, retrying with backoff up to ``timeout``."""
    # Quiet while probing: "connection refused" is expected until the broker is up.
    admin = AdminClient(client_config(settings, log_level=2))

    @retry(
        retry=retry_if_exception_type(KafkaException),
        wait=wait_exponential(multiplier=0.25, max=2),
        stop=stop_after_delay(timeout),
        reraise=True,
    )
    def probe() -> None:
        admin.list_topics(timeout=2)

    try:
        probe()
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.kafka_bootstrap_servers} within "
            f"{timeout:.0f}s ({exc.args[0].str() if exc.args else exc})"
        ) from None
    return admin
