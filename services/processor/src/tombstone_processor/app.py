"""Wiring: settings → Kafka clients, Resonate, the intake; and an orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import timedelta

import aiohttp
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.aio import AIOConsumer
from resonate.connections import LocalConnection, SSEConnection
from resonate.heartbeat import AsyncHeartbeat
from resonate.resonate import Resonate

from tombstone_common.kafka import AsyncProducer, ClientErrors, client_config, consumer_config
from tombstone_common.logs import get_logger
from tombstone_common.settings import fail
from tombstone_processor.dead_letters import DeadLetters
from tombstone_processor.dispatcher import Dispatcher
from tombstone_processor.effects import Publisher
from tombstone_processor.event_stream import EventStream
from tombstone_processor.heartbeat import HeartbeatPerOrigin
from tombstone_processor.failures import reason
from tombstone_processor.http import Check, HealthServer
from tombstone_processor.refusals import StepRefusals
from tombstone_processor.intake import Intake
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.simulation import SimulatedDeleter
from tombstone_processor.server_check import (
    ServerCheck,
    ServerRefused,
    TokenCheckedConnection,
    check_server,
    incompatible_server_line,
    server_check_probe,
    token_refused_line,
)
from tombstone_processor.state import DeletionMetrics, IntakeMetrics, ProcessorState
from tombstone_processor.workflow import (
    Dependencies,
    RetryBackoff,
    WorkflowConfig,
    register_workflows,
)

log = get_logger(__name__)

LOCAL_TIMER_TICK_SECONDS = 0.1


def build_resonate(
    settings: ProcessorSettings,
    publisher: Publisher,
    dead_letters: DeadLetters,
    deletions: DeletionMetrics | None = None,
    server_check: ServerCheck | None = None,
) -> Resonate:
    publish_retry = RetryBackoff.lasting(settings.processor_publish_retry_seconds)
    common = {
        "group": settings.resonate_group,
        "max_concurrent_tasks": settings.processor_max_in_flight,
        # Steps without a policy of their own; the dead-letter step retries inside itself.
        "retry_policy": publish_retry,
    }
    server_check = server_check or ServerCheck()
    if settings.resonate_url is not None:
        ttl = timedelta(seconds=settings.resonate_ttl_seconds)
        pid = uuid.uuid4().hex
        beats = HeartbeatPerOrigin()
        url = str(settings.resonate_url).rstrip("/")
        token = settings.resonate_token.get_secret_value() if settings.resonate_token else None
        resonate = Resonate(
            network=TokenCheckedConnection(url, token, server_check),  # a 401/403 stops the processor
            token=token,
            pid=pid,
            # the SDK's own stream ends for good after 300 s (event_stream.py)
            sources=[EventStream(url, pid=pid, group=settings.resonate_group, auth=token,
                                 idle_seconds=settings.resonate_stream_idle_seconds)],
            ttl=ttl,
            # the SDK's heartbeat loop, renewing each workflow's lease in its own request
            heartbeat=AsyncHeartbeat(pid, max(int(ttl.total_seconds() * 1000) // 2, 1), beats),
            # Re-registers every pending workflow's listener, one request each, in case the
            # event stream dropped a notification while it reconnected: with 10,000 workflows
            # asleep, the SDK's 60 s is ~170 requests/s for nothing. A lost notification only
            # keeps a finished workflow's slot taken until the next refresh.
            subscription_refresh_secs=settings.resonate_listener_refresh_seconds,
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
    register_workflows(resonate)
    resonate.register(server_check_probe)
    resonate.with_dependency(server_check)
    config = WorkflowConfig(
        batch_interval=timedelta(seconds=settings.delete_batch_interval_seconds),
        retry=RetryBackoff.for_deletes(settings),
        publish_retry=publish_retry,
        processor=settings.processor_name,
        offset_waits_for_workflow=not settings.durable,
        deadline_sleeps=settings.durable,  # in-process (local) mode settles no deadline-only promise
    )
    deleter = SimulatedDeleter(settings, settings.processor_name, deletions)
    refusals = StepRefusals(settings.processor_handoff_attempts, dead_letters)
    refusals.bind(resonate.promises)
    resonate.with_dependency(Dependencies(config, deleter, publisher, dead_letters, refusals))
    # Started only now: the server may deliver resumed workflows the moment we connect.
    return resonate.start()


def readiness_checks(settings: ProcessorSettings, server_check: ServerCheck) -> dict[str, Check]:
    """What /readyz asks in the background: can we reach the broker and the Resonate server (and
    does it accept our workflows)."""
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
        problem = None
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                async with session.get(url) as response:
                    if response.status != 200:
                        problem = f"resonate answered {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = f"resonate unreachable: {exc!r}"
        return "; ".join(why for why in (problem, server_check.status) if why) or None

    return {"broker": broker, "resonate": resonate}


def consumer_readiness(intake: IntakeMetrics) -> str | None:
    """Is the consumer in its group (asked on every /readyz: a lost assignment can be brief)."""
    if intake.joined:
        return None
    if intake.lost:
        return "consumer lost its partitions (it missed the session timeout); rejoining the group"
    return "consumer has not joined the group yet"


class Processor:
    """One processor: a consumer-group member and a Resonate worker in one event loop."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
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
            status="" if not settings.durable else "server check has not run yet", on_token_refused=self._token_refused
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
        resonate = build_resonate(settings, publisher, dead_letters, self.state.deletions, server_check)
        dispatcher = Dispatcher(
            resonate, self.state.workflows, dead_letters, settings.processor_handoff_attempts, settings.durable
        )
        intake: Intake | None = None
        consumer: AIOConsumer | None = None
        try:
            if settings.durable and not await self._until_stopped(
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
            intake = Intake(settings, consumer, dispatcher, dead_letters, self.state.intake)
            self._intake = intake
            log.info(
                "processor starting",
                name=settings.processor_name,
                mode="durable" if settings.durable else "local",
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
            await self._shutdown(intake, dispatcher, consumer, resonate, producer)
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
        """Why /healthz fails: the intake loop made no progress for too long with records pending."""
        intake = self.state.intake
        limit = self.settings.processor_liveness_seconds
        pending = intake.pending + sum(intake.lag.values())
        stalled = intake.stalled_for()
        if self.ready.is_set() and pending and stalled > limit:
            return f"intake made no progress for {stalled:.0f}s (limit {limit:g}s) with {pending} records pending"
        return None

    async def _record_lag(self, stats_json: str) -> None:
        if self._intake is not None:
            self._intake.record_lag(stats_json)

    async def _shutdown(
        self,
        intake: Intake | None,
        dispatcher: Dispatcher,
        consumer: AIOConsumer | None,
        resonate: Resonate,
        producer: AsyncProducer,
    ) -> None:
        """Every phase inside one deadline, PROCESSOR_SHUTDOWN_GRACE_SECONDS from now, also when
        the server or the broker is away. Waiting for work (local workflows, running steps) ends
        early enough to leave the closing phases (commit, leaving the group, flushing the
        producer) a quarter of it, at least a second; the producer is flushed whatever went wrong
        before."""
        grace = self.settings.processor_shutdown_grace_seconds
        deadline = Deadline(grace, closing=min(grace, max(1.0, grace / 4)))
        log.info("processor stopping", in_flight=dispatcher.in_flight, grace_seconds=grace)
        with executions_cut_short_are_warnings():
            durable = self.settings.durable and not self.exit_code
            try:
                if not self.settings.durable and not self.exit_code:
                    # Local mode: an unfinished workflow is lost with the process, so finish what
                    # fits in the grace period; the rest is redelivered (its offset stays uncommitted).
                    if not await dispatcher.drain(deadline.left_for_work()):
                        log.warning("grace period over; unfinished workflows will be redelivered")
                if intake is not None:
                    # Records whose hand-off has not finished are dropped: uncommitted, so redelivered.
                    await intake.stop()
                    await deadline.run(intake.commit(), "final offset commit")
                await dispatcher.abandon()
                if consumer is not None:
                    await deadline.run(consumer.close(), "leaving the consumer group")
                if durable:
                    await finish_running_steps(resonate, deadline.left_for_work())
                await deadline.run(resonate.stop(), "stopping the Resonate client")
            except Exception as exc:  # the producer is flushed all the same
                log.warning("shutdown step failed", error=reason(exc))
            finally:
                undelivered = await asyncio.to_thread(producer.close, max(deadline.left(), 0.1))
                if undelivered:
                    log.warning("records not delivered before exit", count=undelivered)
        log.info("processor stopped", seconds=round(deadline.elapsed(), 2), **_summary(self.state))


class _CutShort(logging.Filter):
    """resonate-sdk reports, at error level, each execution that a stop cuts short: a step whose
    result cannot be recorded while the server is away, a task it cannot release once its
    transport is closed. While the processor stops these are expected, not errors: the task's
    lease lapses and the workflow resumes on another processor (the step in flight runs once
    more). They are logged as one warning line each, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("resonate") and record.levelno >= logging.ERROR:
            cause = f" ({reason(record.exc_info[1])})" if record.exc_info and record.exc_info[1] else ""
            record.msg = f"{record.getMessage()}{cause}; stopping: it resumes elsewhere after its lease"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextlib.contextmanager
def executions_cut_short_are_warnings():
    """While the processor stops, see :class:`_CutShort`."""
    cut_short = _CutShort()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(cut_short)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(cut_short)


class Deadline:
    """One shutdown deadline shared by every phase; its last ``closing`` seconds belong to the
    closing phases, which waiting for work must leave them."""

    def __init__(self, seconds: float, closing: float) -> None:
        self._started = time.monotonic()
        self._end = self._started + seconds
        self._closing = closing

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def left_for_work(self) -> float:
        return max(0.0, self._end - self._closing - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    async def run(self, work, what: str) -> None:
        """Await ``work`` for what is left; past that, give up on it (logged, not an error)."""
        try:
            await asyncio.wait_for(work, timeout=self.left())
        except TimeoutError:
            log.warning(f"{what} did not finish within the shutdown grace period")


async def finish_running_steps(resonate: Resonate, grace: float) -> bool:
    """Stop taking tasks from the server, then give the steps already running up to ``grace``
    seconds to finish and record their results; False if some were still running then.

    resonate-sdk 0.8.1's ``Resonate.stop()`` closes its HTTP transport *before* it joins the
    jobs in flight, so a step that finishes during ``stop()`` cannot record its result: its
    task's lease lapses and another processor runs the finished step again (the cluster tier saw
    batches re-run one lease after a rolling restart). Hence the task sources (the server's push
    stream) stop first and the transport stays open while the jobs finish. Uses two private
    attributes of the pinned SDK (``_connections``, ``_runtime.bg_tasks``); ``stop()`` follows.
    """
    for connection in resonate._connections:  # noqa: SLF001
        if isinstance(connection, SSEConnection):
            await connection.stop()
    deadline = time.monotonic() + grace
    running = resonate._runtime.bg_tasks  # noqa: SLF001
    while running and (left := deadline - time.monotonic()) > 0:
        await asyncio.wait(set(running), timeout=left)
        await asyncio.sleep(0)  # let finished jobs discard themselves
    if running:
        log.warning("grace period over with steps still running; they run again elsewhere", steps=len(running))
    return not running


def _summary(state: ProcessorState) -> dict[str, int]:
    return {
        "consumed": state.consumed,
        "started": state.started,
        "completed": state.completed,
        "dead_lettered": state.dead_lettered,
        "invalid": state.invalid,
        "failed": state.failed,
    }
