"""The Resonate client of one processor: connected to the server (durable mode) or in-process
(local mode), with the workflow's versions, the server check's probe and the steps' dependencies
registered, then started."""

from __future__ import annotations

import uuid
from datetime import timedelta

from resonate.connections import LocalConnection
from resonate.heartbeat import AsyncHeartbeat
from resonate.resonate import Resonate

from tombstone_common.logs import get_logger
from tombstone_processor.giving_up import GivingUp
from tombstone_processor.effects import Publisher
from tombstone_processor.mode import Mode
from tombstone_processor.refusals import StepRefusals
from tombstone_processor.sdk.connection import TokenCheckedConnection
from tombstone_processor.sdk.event_stream import EventStream
from tombstone_processor.sdk.heartbeat import HeartbeatPerOrigin
from tombstone_processor.server_check import ServerCheck, server_check_probe
from tombstone_processor.settings import ProcessorSettings
from tombstone_processor.simulation import SimulatedDeleter
from tombstone_processor.state import DeletionMetrics
from tombstone_processor.retries import RetryBackoff
from tombstone_processor.workflow import Dependencies, WorkflowConfig, register_workflows

log = get_logger(__name__)

LOCAL_TIMER_TICK_SECONDS = 0.1


def build_resonate(
    settings: ProcessorSettings,
    publisher: Publisher,
    giving_up: GivingUp,
    deletions: DeletionMetrics | None = None,
    server_check: ServerCheck | None = None,
) -> Resonate:
    mode = Mode.of(settings)
    publish_retry = RetryBackoff.lasting(settings.processor_publish_retry_seconds)
    common = {
        "group": settings.resonate_group,
        "max_concurrent_tasks": settings.processor_max_in_flight,
        # Steps without a policy of their own; the dead-letter step retries inside itself.
        "retry_policy": publish_retry,
    }
    server_check = server_check or ServerCheck()
    if mode.has_server:
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
        mode=mode,
    )
    deleter = SimulatedDeleter(settings, settings.processor_name, deletions)
    refusals = StepRefusals(settings.processor_handoff_attempts, giving_up)
    refusals.bind(resonate.promises)
    resonate.with_dependency(Dependencies(config, deleter, publisher, giving_up, refusals))
    # Started only now: the server may deliver resumed workflows the moment we connect.
    return resonate.start()
