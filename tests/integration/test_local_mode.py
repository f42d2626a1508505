"""Local mode against the real broker: an offset settles only when its workflow completed."""

from __future__ import annotations

import asyncio

import pytest

from devstack.procs import wait_until
from harness.kafka import committed_offsets
from harness.topics import create_topics, send_tombstones
from tests.support.pipeline import processor_settings, running_processor
from tombstone_common.messages import Tombstone

pytestmark = pytest.mark.integration


async def test_a_workflow_cut_short_by_the_shutdown_keeps_its_offset_uncommitted(kafka, names, uid, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    quick, slow = Tombstone(id=f"quick{uid}", batches=1), Tombstone(id=f"slow{uid}", batches=1000)
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, delete_batch_interval_seconds=0.2, processor_shutdown_grace_seconds=1
    )
    async with running_processor(settings) as processor:
        await asyncio.to_thread(send_tombstones, kafka.bootstrap, names, [quick, slow])
        await asyncio.to_thread(
            wait_until, lambda: processor.state.completed == 1 and processor.state.started == 2, 60, "quick done, slow running"
        )
        await asyncio.to_thread(
            wait_until, lambda: processor.state.commits >= 1, 30, "the completed one committed"
        )
    # the shutdown cancelled the slow workflow (it could not finish within the grace): not completion
    committed = committed_offsets(kafka.bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"])
    assert committed == {0: 1}

    again = processor_settings(kafka.bootstrap, names, tmp_path, processor_shutdown_grace_seconds=1)
    async with running_processor(again) as processor:
        await asyncio.to_thread(wait_until, lambda: processor.state.consumed == 1, 60, "the slow one redelivered")
