"""Running the real processor inside a test's event loop, against the real broker."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

from tombstone_common.kafka import wait_for_broker
from tombstone_common.messages import Tombstone
from tombstone_common.settings import PipelineSettings
from tombstone_producer.produce import DeliveryReport, produce
from tombstone_processor.app import Processor
from tombstone_processor.settings import ProcessorSettings
from tombstone_topic_init.topics import TopicInitSettings, ensure_topics

FAST = {
    "delete_batch_interval_seconds": 0,
    "delete_retry_initial_seconds": 0.01,
    "delete_retry_max_seconds": 0.05,
    "delete_error_rate": 0,
    "simulation_seed": 1,
    "processor_shutdown_grace_seconds": 5,
    "processor_http_port": 0,
}


def _fields(env: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in env.items()}


def create_topics(bootstrap: str, names: dict[str, str], partitions: int) -> None:
    settings = TopicInitSettings(
        kafka_bootstrap_servers=bootstrap, topic_partitions=partitions, _env_file=None, **_fields(names)
    )
    outcomes = ensure_topics(wait_for_broker(settings, 30), settings)
    assert all(outcome.partitions == partitions for outcome in outcomes)


def processor_settings(bootstrap: str, names: dict[str, str], tmp_path: Path, **overrides) -> ProcessorSettings:
    values = {
        "kafka_bootstrap_servers": bootstrap,
        "processor_name": "test-processor",
        "delete_ledger_path": str(tmp_path / "ledger.jsonl"),
        **FAST,
        **_fields(names),
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


def send_tombstones(
    bootstrap: str, names: dict[str, str], tombstones: list[Tombstone], rate: float | None = None
) -> DeliveryReport:
    """Produce with the real producer code onto this test's tombstones topic; all delivered."""
    settings = PipelineSettings(
        kafka_bootstrap_servers=bootstrap, topic_tombstones=names["TOPIC_TOMBSTONES"], _env_file=None
    )
    report = produce(settings, tombstones, rate)
    assert report.delivered == len(tombstones) and not report.failed, report.failed[:3]
    return report


def read_ledger(path: str | Path) -> list[dict]:
    """The simulated deletion's ledger (DELETE_LEDGER_PATH): one dict per delete attempt."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def ledger(settings: ProcessorSettings) -> list[dict]:
    return read_ledger(settings.delete_ledger_path)


def successful_batches(settings: ProcessorSettings) -> Counter[tuple[str, int]]:
    """How many times each (id, batch) was deleted successfully; all ones when nothing was redone."""
    return Counter((entry["id"], entry["batch"]) for entry in ledger(settings) if entry["ok"])
