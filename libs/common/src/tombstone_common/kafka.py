"""Kafka clients configured once for every service.

:func:`producer_config` and :func:`consumer_config` hold the settings this pipeline relies on
(idempotent producer, manual commits); :class:`AsyncProducer` turns delivery reports into
awaitables so asyncio code can wait for a record to be durably on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
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


class DeliveryFailed(KafkaException):
    """The broker did not take a record; ``error`` is librdkafka's :class:`KafkaError`, so a caller
    can tell ``error.retriable()`` from ``error.fatal()``."""

    @property
    def error(self) -> KafkaError:
        return self.args[0]


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


class AsyncProducer:
    """An idempotent producer whose :meth:`send` resolves once the broker acknowledged."""

    def __init__(self, settings: KafkaSettings, **extra: Any) -> None:
        self._producer = Producer(producer_config(settings, **extra))
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

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

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers or ()), on_delivery=on_delivery
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then try again
                await asyncio.sleep(0.05)
            except KafkaException as exc:  # refused before it was queued (too large, fatal state)
                raise DeliveryFailed(exc.args[0]) from None
        return await delivered

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for queued records; returns how many are still undelivered."""
        return self._producer.flush(timeout)

    def close(self, timeout: float = 10.0) -> int:
        """Flush for up to ``timeout`` seconds, then stop; returns how many records were not delivered."""
        undelivered = self.flush(timeout)
        self._closed.set()
        self._poller.join(timeout)
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
