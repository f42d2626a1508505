"""The processor's HTTP port: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tombstone_processor.failures import reason
from tombstone_processor.state import ProcessorState

Check = Callable[[], Awaitable[str | None]]  # None = fine, else why not


class StateCollector:
    """Exposes :class:`ProcessorState` as Prometheus metrics (one source of truth)."""

    COUNTERS = {
        "consumed": "Records taken from the tombstones topic",
        "started": "Workflows started by this processor",
        "completed": "Workflows that published their processed record",
        "cancelled": "Workflows stopped by record-admin cancel (processed record with status cancelled)",
        "dead_lettered": "Workflows that gave up and dead-lettered their tombstone",
        "invalid": "Invalid records sent to the dead-letter topic",
        "failed": "Workflows that ended with an unexpected error",
        "duplicates": "Records whose tombstone id was already in flight here",
        "batch_attempts": "Delete attempts executed here, failures included",
        "batch_failures": "Delete attempts that failed (and were retried)",
        "commits": "Offset commits made by the intake",
        "handoff_retries": "Hand-offs tried again after a failure",
        "dead_letter_refusals": "Dead-letter writes the broker refused (each is retried until accepted)",
    }

    def __init__(self, state: ProcessorState) -> None:
        self._state = state

    def collect(self):
        for name, help_text in self.COUNTERS.items():
            yield CounterMetricFamily(f"tombstones_{name}", help_text, value=getattr(self._state, name))
        yield GaugeMetricFamily("tombstones_in_flight", "Workflows in flight", value=self._state.in_flight)
        yield GaugeMetricFamily(
            "tombstones_partitions_paused", "1 while intake is paused at the bound", value=int(self._state.paused)
        )
        yield GaugeMetricFamily(
            "tombstones_records_pending", "Records taken whose offset has not settled", value=self._state.pending
        )
        yield GaugeMetricFamily(
            "tombstones_partitions_assigned", "Partitions assigned", value=len(self._state.assigned)
        )
        yield GaugeMetricFamily(
            "tombstones_stuck_partitions",
            "Partitions paused at a record whose dead letter the broker refuses",
            value=len(self._state.held),
        )
        yield GaugeMetricFamily(
            "tombstones_dead_letters_stuck", "Dead letters the broker refuses right now", value=len(self._state.stuck)
        )
        lag = GaugeMetricFamily(
            "tombstones_consumer_lag", "Records behind the end of each partition", labels=["topic", "partition"]
        )
        for (topic, partition), value in sorted(self._state.lag.items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag


class HealthServer:
    """Serves the probes; readiness checks run in the background so /readyz answers at once."""

    CHECK_INTERVAL_SECONDS = 2.0

    def __init__(
        self,
        state: ProcessorState,
        checks: dict[str, Check],
        port: int,
        liveness: Callable[[], str | None] = lambda: None,
        live_checks: dict[str, Callable[[], str | None]] | None = None,
    ) -> None:
        self._checks = checks
        self._live_checks = live_checks or {}  # cheap: evaluated on every request
        self._liveness = liveness
        self._port = port
        self._problems: dict[str, str] = {"startup": "checks have not run yet"}
        self._checker: asyncio.Task[None] | None = None
        self._registry = state.registry
        self._registry.register(StateCollector(state))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/metrics", self._metrics),
        ])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "0.0.0.0", self._port).start()
        self._checker = asyncio.create_task(self._check_forever())

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _check_forever(self) -> None:
        """A check that raises is a failed check with the reason: the loop never dies, so
        ``/readyz`` never freezes on an old answer."""
        while True:
            results = await asyncio.gather(*(check() for check in self._checks.values()), return_exceptions=True)
            self._problems = {
                name: f"check failed: {reason(why)}" if isinstance(why, BaseException) else why
                for name, why in zip(self._checks, results)
                if why is not None
            }
            await asyncio.sleep(self.CHECK_INTERVAL_SECONDS)

    async def _healthz(self, _: web.Request) -> web.Response:
        wedged = self._liveness()
        if wedged:
            return web.json_response({"status": "wedged", "reason": wedged}, status=503)
        return web.json_response({"status": "alive"})

    async def _readyz(self, _: web.Request) -> web.Response:
        live = {name: _safely(check) for name, check in self._live_checks.items()}
        problems = {**self._problems, **{name: why for name, why in live.items() if why is not None}}
        status = 503 if problems else 200
        return web.json_response({"ready": not problems, "problems": problems}, status=status)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _safely(check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except Exception as exc:
        return f"check failed: {reason(exc)}"
