"""Running the real processor inside a test's event loop, against the real broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaException

from devstack.procs import wait_until
from harness.kafka import committed_offsets
from harness.ledger import read_ledger
from harness.topics import as_fields
from tombstone_processor.app import Processor
from tombstone_processor.settings import ProcessorSettings

FAST = {
    "delete_batch_interval_seconds": 0,
    "delete_retry_initial_seconds": 0.01,
    "delete_retry_max_seconds": 0.05,
    "delete_error_rate": 0,
    "simulation_seed": 1,
    "processor_shutdown_grace_seconds": 5,
    "processor_http_port": 0,
}


def processor_settings(bootstrap: str, names: dict[str, str], tmp_path: Path, **overrides) -> ProcessorSettings:
    values = {
        "kafka_bootstrap_servers": bootstrap,
        "processor_name": "test-processor",
        "delete_ledger_path": str(tmp_path / "ledger.jsonl"),
        **FAST,
        **as_fields(names),
        **overrides,
    }
    return ProcessorSettings(_env_file=None, **values)


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
