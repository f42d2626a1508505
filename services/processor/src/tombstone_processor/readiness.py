"""What the processor's probes ask: ``/readyz`` (can it reach the broker and the server, is its
consumer in the group, is a dead letter refused) and ``/healthz`` (is the intake making progress)."""

from __future__ import annotations

import asyncio

import aiohttp
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tombstone_common.kafka import client_config
from tombstone_processor.http import Check
from tombstone_processor.server_check import ServerCheck
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.state import IntakeMetrics

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


def intake_liveness(intake: IntakeMetrics, limit: float, started: bool) -> str | None:
    """Why /healthz fails: the intake loop made no progress for ``limit`` seconds with records
    pending (once it has ``started``)."""
    pending = intake.pending + sum(intake.lag.values())
    stalled = intake.stalled_for()
    if started and pending and stalled > limit:
        return f"intake made no progress for {stalled:.0f}s (limit {limit:g}s) with {pending} records pending"
    return None
