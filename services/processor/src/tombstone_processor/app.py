"""Wiring: settings → Kafka clients, Resonate, the intake; and an orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta

import aiohttp
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.aio import AIOConsumer
from resonate.connections import LocalConnection
from resonate.heartbeat import AsyncHeartbeat
from resonate.resonate import Resonate

from tombstone_common.kafka import AsyncProducer, client_config, consumer_config
from tombstone_common.logs import get_logger
from tombstone_common.settings import fail
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.effects import Publisher
from tombstone_processor.heartbeat import HeartbeatPerOrigin
from tombstone_processor.http import Check, HealthServer
from tombstone_processor.intake import Intake
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.simulation import SimulatedDeleter
from tombstone_processor.state import ProcessorState
from tombstone_processor.workflow import (
    Dependencies,
    RetryBackoff,
    WorkflowConfig,
    cleanup_tombstone,
)

log = get_logger(__name__)

LOCAL_TIMER_TICK_SECONDS = 0.1


def build_resonate(
    settings: ProcessorSettings, publisher: Publisher, state: ProcessorState | None = None
) -> Resonate:
    common = {
        "group": settings.resonate_group,
        "max_concurrent_tasks": settings.processor_max_in_flight,
        # Steps other than delete_batch (publishing to Kafka) retry until the broker is back.
        "retry_policy": RetryBackoff(initial=0.5, maximum=30, attempts=1_000_000),
    }
    if settings.resonate_url is not None:
        ttl = timedelta(seconds=settings.resonate_ttl_seconds)
        pid = uuid.uuid4().hex
        beats = HeartbeatPerOrigin()
        resonate = Resonate(
            url=str(settings.resonate_url).rstrip("/"),
            token=settings.resonate_token.get_secret_value() if settings.resonate_token else None,
            pid=pid,
            ttl=ttl,
            # the SDK's heartbeat loop, renewing each workflow's lease in its own request
            heartbeat=AsyncHeartbeat(pid, max(int(ttl.total_seconds() * 1000) // 2, 1), beats),
            subscription_refresh_secs=10,
            autostart=False,
            **common,
        )
        beats.bind(resonate.promises.sender)
    else:
        log.warning(
            "RESONATE_URL is not set: LOCAL MODE, workflows live in this process only and are "
            "NOT durable; set RESONATE_URL for crash recovery"
        )
        resonate = Resonate(
            network=LocalConnection(
                group=settings.resonate_group, tick_interval=LOCAL_TIMER_TICK_SECONDS
            ),
            subscription_refresh_secs=0,
            autostart=False,
            **common,
        )
    resonate.register(cleanup_tombstone)
    config = WorkflowConfig(
        batch_interval=timedelta(seconds=settings.delete_batch_interval_seconds),
        retry=RetryBackoff.for_deletes(settings),
        processor=settings.processor_name,
    )
    deleter = SimulatedDeleter(settings, settings.processor_name, state)
    resonate.with_dependency(Dependencies(config, deleter, publisher))
    # Started only now: the server may deliver resumed workflows the moment we connect.
    return resonate.start()


def readiness_checks(settings: ProcessorSettings, state: ProcessorState) -> dict[str, Check]:
    """What /readyz asks: can we reach the broker and the Resonate server, did we join the group."""
    admin = AdminClient(client_config(settings))

    async def broker() -> str | None:
        try:
            await asyncio.to_thread(admin.list_topics, settings.topic_tombstones, timeout=2)
        except KafkaException as exc:
            return f"broker unreachable: {exc.args[0].str()}"
        return None

    async def resonate() -> str | None:
        if settings.resonate_url is None:
            return None
        url = str(settings.resonate_url).rstrip("/") + "/ready"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                async with session.get(url) as response:
                    return None if response.status == 200 else f"resonate answered {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"resonate unreachable: {exc!r}"

    async def consumer() -> str | None:
        return None if state.joined else "consumer has not joined the group yet"

    return {"broker": broker, "resonate": resonate, "consumer": consumer}


class Processor:
    """One processor: a consumer-group member and a Resonate worker in one event loop."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self.state = ProcessorState()
        self.ready = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        # The HTTP port first: a port in use fails here, before any Kafka client exists.
        http = HealthServer(self.state, readiness_checks(settings, self.state), settings.processor_http_port)
        if settings.processor_http_port:
            try:
                await http.start()
            except OSError as exc:
                fail(f"PROCESSOR_HTTP_PORT={settings.processor_http_port}: {exc.strerror}", code=1)
        producer = AsyncProducer(settings)
        publisher = Publisher(producer, settings)
        resonate = build_resonate(settings, publisher, self.state)
        dispatcher = Dispatcher(resonate, self.state)
        consumer = AIOConsumer(
            consumer_config(
                settings,
                settings.kafka_consumer_group,
                **{
                    "session.timeout.ms": settings.kafka_session_timeout_ms,
                    "heartbeat.interval.ms": max(settings.kafka_session_timeout_ms // 4, 500),
                    "statistics.interval.ms": 5000,
                    "stats_cb": self._record_lag,
                },
            )
        )
        intake = Intake(settings, consumer, dispatcher, publisher, self.state)
        log.info(
            "processor starting",
            name=settings.processor_name,
            mode="durable" if settings.durable else "local",
            max_in_flight=settings.processor_max_in_flight,
            topic=settings.topic_tombstones,
        )
        self.ready.set()
        try:
            await intake.run(stopping)
        finally:
            await self._shutdown(intake, dispatcher, consumer, resonate, producer)
            await http.stop()

    async def _record_lag(self, stats_json: str) -> None:
        """librdkafka statistics → consumer lag per assigned partition."""
        stats = json.loads(stats_json)
        lag = {}
        for topic, data in stats.get("topics", {}).items():
            for partition, values in data.get("partitions", {}).items():
                if (topic, int(partition)) in self.state.assigned and values.get("consumer_lag", -1) >= 0:
                    lag[(topic, int(partition))] = values["consumer_lag"]
        self.state.lag = lag

    async def _shutdown(
        self,
        intake: Intake,
        dispatcher: Dispatcher,
        consumer: AIOConsumer,
        resonate: Resonate,
        producer: AsyncProducer,
    ) -> None:
        grace = self.settings.processor_shutdown_grace_seconds
        log.info("processor stopping", in_flight=dispatcher.in_flight, grace_seconds=grace)
        if not self.settings.durable:
            # Local mode: an unfinished workflow is lost with the process, so finish what
            # fits in the grace period; the rest is redelivered (its offset stays uncommitted).
            if not await dispatcher.drain(grace):
                log.warning("grace period over; unfinished workflows will be redelivered")
        await intake.commit()
        dispatcher.abandon()
        await consumer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resonate.stop(), timeout=max(grace, 1))
        await asyncio.to_thread(producer.close)
        log.info("processor stopped", **_summary(self.state))


def _summary(state: ProcessorState) -> dict[str, int]:
    return {
        "consumed": state.consumed,
        "started": state.started,
        "completed": state.completed,
        "dead_lettered": state.dead_lettered,
        "invalid": state.invalid,
        "failed": state.failed,
    }
