"""Running the real processor inside a test's event loop, against the real broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import asynccontextmanager
from functools import partial

from confluent_kafka import KafkaException

from devstack.procs import wait_until
from harness.kafka import committed_offsets
from harness.ledger import read_ledger
from tombstone_processor.app import Processor
from tombstone_processor.settings import ProcessorSettings

from tests.support.settings import processor_settings  # noqa: F401  (here too, beside running_processor)


@asynccontextmanager
async def running_processor(settings: ProcessorSettings):
    processor = Processor(settings)
    stopping = asyncio.Event()
    task = asyncio.create_task(processor.run(stopping))
    await asyncio.wait([task, asyncio.ensure_future(processor.ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield processor
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


async def off_loop(call, *args, **kwargs):
    """Run a blocking wait or read beside the event loop the processor runs in."""
    return await asyncio.to_thread(partial(call, *args, **kwargs))


def ledger(settings: ProcessorSettings) -> list[dict]:
    return read_ledger(settings.delete_ledger_path)


def successful_batches(settings: ProcessorSettings) -> Counter[tuple[str, int]]:
    """How many times each (id, batch) was deleted successfully; all ones when nothing was redone."""
    return Counter((entry["id"], entry["batch"]) for entry in ledger(settings) if entry["ok"])


def committed(bootstrap: str, names: dict[str, str]) -> dict[int, int]:
    """The group's committed offsets of the tombstones topic, asked until the coordinator answers."""
    answer: dict[int, int] = {}

    def ask() -> bool:
        try:
            answer.update(committed_offsets(bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"]))
        except KafkaException:
            return False
        return True

    wait_until(ask, 30, "committed offsets")
    return answer
