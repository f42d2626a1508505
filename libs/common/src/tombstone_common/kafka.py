"""Kafka clients configured once for every service.

:func:`producer_config` and :func:`consumer_config` hold the settings this pipeline relies on
(idempotent producer, manual commits); :class:`AsyncProducer` turns delivery reports into
awaitables so asyncio code can wait for a record to be durably on the broker.

A broker that refuses a client (its TLS handshake, its SASL credentials) is not an outage to
wait out: :func:`refusal` recognises librdkafka's errors for it, and every command ends with
:class:`KafkaAccessError`'s one line and exit status 2 instead of retrying
(:func:`wait_for_broker`, :func:`check_broker_access`, :class:`ClientErrors`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from tombstone_common.messages import Headers
from tombstone_common.settings import KafkaSettings



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


def kafka_error_passes(error: KafkaError) -> bool:
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
    return f"{error.name()} ({'transient' if kafka_error_passes(error) else 'permanent'}): {error.str()}"


class DeliveryFailed(KafkaException):
    """The broker did not take a record; ``error`` is librdkafka's :class:`KafkaError`
    (:func:`kafka_error_passes` tells a broker that is away from one that refuses)."""

    @property
    def error(self) -> KafkaError:
        return self.args[0]

    def __str__(self) -> str:
        return describe(self.error)


class KafkaAccessError(Exception):
    """The client cannot get in, and retrying will not change that: the broker refused its TLS
    handshake or its SASL credentials, or librdkafka could not load its TLS files. ``str()`` is
    one line for the operator, naming the cause and the variables to check, never a secret;
    commands exit with it and status 2 (a configuration error, like an invalid variable)."""


#: The environment variables behind librdkafka's properties, for messages about them.
VARIABLES = {
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD",
    "ssl.endpoint.identification.algorithm": "KAFKA_SSL_ENDPOINT_IDENTIFICATION",
    "sasl.mechanisms": "KAFKA_SASL_MECHANISM",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
}
_PROPERTY = re.compile("|".join(re.escape(name) for name in sorted(VARIABLES, key=len, reverse=True)))
#: ``sasl_ssl://127.0.0.1:9094/bootstrap: `` or ``ssl://host:9093/1: `` before librdkafka's text
_BROKER = re.compile(r"^(?P<scheme>[a-z_]+)://(?P<address>[^/\s]+)/\S*: ")
_TAIL = re.compile(r"\s*\(after \d+ms in state [A-Z_]+[^)]*\)\s*$")
_OPENSSL_CODE = re.compile(r"error:[0-9A-Fa-f]{8}:[^:]*::")
#: A TLS alert received from the broker, as OpenSSL words it (``ssl/tls alert bad certificate``,
#: ``tlsv13 alert certificate required``, ``sslv3 alert handshake failure`` …).
_ALERT = re.compile(r"(?:ssl/tls|sslv3|tlsv1|tlsv13) alert (?P<name>[a-z ]+?)(?=: SSL alert number|\s*\(|$)")
#: Alerts by which a broker refuses the client's certificate (or its absence). With TLS 1.3 the
#: client's side of the handshake is over before the broker checks the certificate, so they
#: arrive as transport errors on the first request, not as SSL errors.
CLIENT_CERTIFICATE_ALERTS = frozenset({
    "bad certificate", "unsupported certificate", "certificate revoked", "certificate expired",
    "certificate unknown", "unknown ca", "access denied", "certificate required",
})
#: An SSL error that is a connection lost mid-handshake (a broker restarting), not a refusal.
_CUT_SHORT = ("unexpected eof", "Disconnected", "reset by peer", "Connection refused", "timed out")


def refusal(error: KafkaError) -> str | None:
    """The operator's line for an error by which the broker refuses this client, which no retry
    can change: the TLS handshake failed (its certificate is not trusted, or it refused ours), or
    SASL authentication failed. None for any other error (a broker away, a connection cut)."""
    text = error.str()
    broker_prefix = _BROKER.match(text)
    broker = broker_prefix["address"] if broker_prefix else "the broker"
    detail = _TAIL.sub("", text[broker_prefix.end():] if broker_prefix else text)
    code = error.code()
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        detail = detail.removeprefix("SASL authentication error: ").removeprefix("Broker: ")
        return (
            f"kafka: SASL authentication with {broker} failed: {detail} "
            "(check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)"
        )
    if code not in (KafkaError._SSL, KafkaError._TRANSPORT):
        return None
    handshake = f"kafka: TLS handshake with {broker} failed"
    if alert := _ALERT.search(detail):
        name = alert["name"]
        if name in CLIENT_CERTIFICATE_ALERTS:
            return (
                f'{handshake}: the broker refused the client certificate (TLS alert "{name}"): none '
                "was given, or it has expired or is not signed by a CA the broker trusts "
                "(KAFKA_SSL_CERTIFICATE_LOCATION, KAFKA_SSL_KEY_LOCATION)"
            )
        if code == KafkaError._SSL and name != "close notify":  # ended during the handshake
            return f'{handshake}: the broker ended it with TLS alert "{name}"'
        return None
    if "certificate verify failed" in detail:
        host = broker.rpartition(":")[0] or broker
        return (
            f"{handshake}: certificate verify failed: the broker's certificate is not signed by a "
            "CA in KAFKA_SSL_CA_LOCATION (the system's CAs when unset), has expired, or does not "
            f"name {host} (KAFKA_SSL_ENDPOINT_IDENTIFICATION=https checks the host name)"
        )
    if code == KafkaError._SSL and not any(cut in detail for cut in _CUT_SHORT):
        reason = _OPENSSL_CODE.sub("", detail.removeprefix("SSL handshake failed: "))
        return f"{handshake}: {_PROPERTY.sub(lambda m: VARIABLES[m[0]], reason)}"
    return None


def unusable_config(error: KafkaError) -> str:
    """The operator's line for a client librdkafka would not create (``Failed to create
    producer: ssl.key.location failed: …``): the variables instead of librdkafka's properties."""
    detail = re.sub(r"^Failed to create [a-z ]+: ", "", error.str())
    detail = _PROPERTY.sub(lambda m: VARIABLES[m[0]], _OPENSSL_CODE.sub("", detail))
    if detail.startswith("KAFKA_SSL_KEY_LOCATION failed: PEM lib"):
        detail += " (not a PEM private key, or an encrypted one and KAFKA_SSL_KEY_PASSWORD is wrong or unset)"
    elif "failed: PEM lib" in detail or "no certificate or crl found" in detail:
        detail += " (not a PEM certificate)"
    return f"kafka: the client cannot be created: {detail}"


FatalHandler = Callable[[KafkaError], None]


class ClientErrors:
    """librdkafka's ``error_cb`` for every client of one process.

    Most client errors are transient (a broker away, a timed-out request) and the client recovers
    by itself; librdkafka logs them. A *fatal* one (a fenced idempotent producer, a fenced static
    group member) leaves the client unusable: it goes to ``on_fatal``, once, which should make the
    process exit non-zero so that it is restarted, instead of retrying forever. So does a
    *refusal* (:func:`refusal`: the broker refused the TLS handshake or the credentials), which
    librdkafka would retry forever while the process looks alive; ``refusal`` keeps its line for
    the process's last words (:meth:`raise_refusal`)."""

    def __init__(self, on_fatal: FatalHandler) -> None:
        self._on_fatal = on_fatal
        self._reported = threading.Event()
        self.refusal: str | None = None

    def __call__(self, error: KafkaError) -> None:
        refused = refusal(error)
        if refused and self.refusal is None:
            self.refusal = refused
        if (error.fatal() or refused) and not self._reported.is_set():
            self._reported.set()
            self._on_fatal(error)

    def raise_refusal(self) -> None:
        """Raise :class:`KafkaAccessError` if the broker refused a client."""
        if self.refusal is not None:
            raise KafkaAccessError(self.refusal)

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


def create_client[C](factory: Callable[[dict[str, Any]], C], config: dict[str, Any]) -> C:
    """``factory(config)``, or :class:`KafkaAccessError` when librdkafka refuses to create the
    client (a TLS file it cannot load, a key that does not match its certificate)."""
    try:
        return factory(config)
    except KafkaException as exc:
        raise KafkaAccessError(unusable_config(exc.args[0])) from None


def _probing_admin(settings: KafkaSettings, errors: Callable[[KafkaError], None]) -> AdminClient:
    # Quiet while probing: "connection refused" is expected until the broker is up, and a
    # refusal is reported once, by the caller, not at every reconnect.
    return create_client(AdminClient, client_config(settings, log_level=2, error_cb=errors))


#: How long :func:`check_broker_access` waits for a broker that accepts TCP connections to
#: either answer or refuse (a TLS handshake and a SCRAM exchange take well under a second).
ACCESS_CHECK_SECONDS = 10.0


def check_broker_access(settings: KafkaSettings, timeout: float = ACCESS_CHECK_SECONDS) -> bool:
    """At the start of a command that does not wait for the broker itself (the producer, the
    processor): :class:`KafkaAccessError` when the client cannot be created or the broker
    refuses it; True once the broker answered; False, without waiting any longer, as soon as no
    broker is reachable (the command then meets the broker's absence as it always did), or after
    ``timeout``."""
    errors = ClientErrors(on_fatal=lambda error: None)
    unreachable = threading.Event()

    def on_error(error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            unreachable.set()
        errors(error)

    admin = _probing_admin(settings, on_error)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=0.5)
            return True
        except KafkaException:
            pass
        admin.poll(0)  # serves error_cb
        errors.raise_refusal()
        if unreachable.is_set() or time.monotonic() >= deadline:
            return False


def wait_for_broker(settings: KafkaSettings, timeout: float) -> AdminClient:
    """Return an admin client once the cluster answers, retrying with backoff up to ``timeout``;
    :class:`KafkaAccessError` at once when the broker refuses the client (no retry helps)."""
    errors = ClientErrors(on_fatal=lambda error: None)
    admin = _probing_admin(settings, errors)

    @retry(
        retry=retry_if_exception_type(KafkaException),
        wait=wait_exponential(multiplier=0.25, max=2),
        stop=stop_after_delay(timeout),
        reraise=True,
    )
    def probe() -> None:
        try:
            admin.list_topics(timeout=2)
        except KafkaException:
            admin.poll(0)  # serves error_cb
            errors.raise_refusal()
            raise

    try:
        probe()
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.kafka_bootstrap_servers} within "
            f"{timeout:.0f}s ({exc.args[0].str() if exc.args else exc})"
        ) from None
    return admin
