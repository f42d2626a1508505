"""The composition root: settings → the processor's parts, wired, run, and stopped in order.

Each part lives in its own module: the Kafka intake (intake.py), the dispatcher that hands jobs
to Resonate (dispatcher.py), the Resonate client (resonate_client.py), the probes (readiness.py),
the stop (shutdown.py); the mode they run in is decided once (mode.py). See "How the processor
works" in the README for the path of one record through them.
"""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError
from confluent_kafka.aio import AIOConsumer

from tombstone_common.kafka import AsyncProducer, ClientErrors, consumer_config
from tombstone_common.logs import get_logger
from tombstone_common.settings import fail
from tombstone_processor.dead_letters import DeadLetters
from tombstone_processor.giving_up import GivingUp
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.effects import Publisher
from tombstone_processor.http import HealthServer
from tombstone_processor.intake import Intake
from tombstone_processor.mode import Mode
from tombstone_processor.readiness import consumer_readiness, intake_liveness, readiness_checks
from tombstone_processor.resonate_client import build_resonate
from tombstone_processor.server_check import (
    ServerCheck,
    ServerRefused,
    check_server,
    incompatible_server_line,
    token_refused_line,
)
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.shutdown import Parts, shut_down
from tombstone_processor.state import ProcessorState

log = get_logger(__name__)


class Processor:
    """One processor: a consumer-group member and a Resonate worker in one event loop."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self.mode = Mode.of(settings)
        self.state = ProcessorState()
        self.ready = asyncio.Event()
        self.exit_code = 0
        self._stopping = asyncio.Event()
        self._intake: Intake | None = None  # set once the consumer exists; its statistics go there
        self._dead_letters: DeadLetters | None = None
        self._server_check: ServerCheck | None = None

    async def run(self, stopping: asyncio.Event) -> int:
        """Run until ``stopping`` is set (or a fatal error); returns the exit status."""
        code = await self._run(stopping)
        refused = self._server_check.token_refused if self._server_check else None
        if refused is not None:  # last, so the line is the last thing the process says
            fail(token_refused_line(self._url, refused, bool(self.settings.resonate_token)), code=2)
        return code

    async def _run(self, stopping: asyncio.Event) -> int:
        settings = self.settings
        self._stopping = stopping
        loop = asyncio.get_running_loop()
        kafka_errors = self.kafka_errors = ClientErrors(
            lambda error: loop.call_soon_threadsafe(self._fatal_kafka_error, error)
        )
        server_check = self._server_check = ServerCheck(
            status="server check has not run yet" if self.mode.has_server else "", on_token_refused=self._token_refused
        )
        # The HTTP port first: a port in use fails here, before any Kafka client exists.
        http = HealthServer(
            self.state,
            readiness_checks(settings, server_check),
            settings.processor_http_port,
            liveness=self._liveness,
            live_checks={
                "consumer": lambda: consumer_readiness(self.state.intake),
                "dead-letter": lambda: self._dead_letters.problem() if self._dead_letters else None,
            },
        )
        if settings.processor_http_port:
            try:
                await http.start()
            except OSError as exc:
                fail(f"PROCESSOR_HTTP_PORT={settings.processor_http_port}: {exc.strerror}", code=1)
        producer = AsyncProducer(settings, error_cb=kafka_errors)
        publisher = Publisher(producer, settings)
        dead_letters = self._dead_letters = DeadLetters(publisher, self.state.dead_letters)
        giving_up = GivingUp(dead_letters, self.mode, self.state.giving_up)
        resonate = build_resonate(settings, publisher, giving_up, self.state.deletions, server_check)
        dispatcher = Dispatcher(
            resonate, self.state.workflows, giving_up, settings.processor_handoff_attempts, self.mode
        )
        intake: Intake | None = None
        consumer: AIOConsumer | None = None
        try:
            if self.mode.has_server and not await self._until_stopped(
                check_server(resonate, server_check, self._url, settings.processor_handoff_attempts)
            ):
                return self.exit_code
            consumer = AIOConsumer(
                consumer_config(
                    settings,
                    settings.kafka_consumer_group,
                    **{
                        "session.timeout.ms": settings.kafka_session_timeout_ms,
                        "heartbeat.interval.ms": max(settings.kafka_session_timeout_ms // 4, 500),
                        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
                        "statistics.interval.ms": 5000,
                        "stats_cb": self._record_lag,
                        "error_cb": kafka_errors.from_asyncio,
                    },
                )
            )
            intake = Intake(settings, consumer, dispatcher, giving_up, self.state.intake)
            self._intake = intake
            log.info(
                "processor starting",
                name=settings.processor_name,
                mode=self.mode.name,
                max_in_flight=settings.processor_max_in_flight,
                topic=settings.topic_tombstones,
            )
            self.ready.set()
            await intake.run(stopping)
        except ServerRefused as exc:
            refusal = exc
        else:
            refusal = None
        finally:
            await shut_down(
                Parts(intake, dispatcher, consumer, resonate, producer), self.mode,
                settings.processor_shutdown_grace_seconds, self.state, failed=bool(self.exit_code),
            )
            await http.stop()
        if refusal is not None:  # last, so the line is the last thing the process says
            fail(incompatible_server_line(self._url, refusal), code=2)
        return self.exit_code

    @property
    def _url(self) -> str:
        return str(self.settings.resonate_url).rstrip("/")

    async def _until_stopped(self, work) -> bool:
        """Run ``work`` unless ``stopping`` comes first; True if it finished."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        task.result()
        return True

    def _fatal_kafka_error(self, error: KafkaError) -> None:
        log.error("fatal Kafka client error; exiting so that the process is restarted", code=error.name(), error=error.str())
        self.exit_code = 1
        self._stopping.set()

    def _token_refused(self, status: int) -> None:
        log.error(
            "the Resonate server refused this processor's token; stopping (records not handed off are redelivered)",
            url=self._url, status=status,
        )
        self.exit_code = 2
        self._stopping.set()

    def _liveness(self) -> str | None:
        return intake_liveness(self.state.intake, self.settings.processor_liveness_seconds, self.ready.is_set())

    async def _record_lag(self, stats_json: str) -> None:
        if self._intake is not None:
            self._intake.record_lag(stats_json)
