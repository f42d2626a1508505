"""The processor's settings in tests: a preset and what the test says, over the defaults; never
the environment's or a .env file's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.topics import as_fields
from tombstone_processor.settings import ProcessorSettings

NO_BROKER = "127.0.0.1:9"  # nothing listens there: for tests whose Kafka is a fake

# A processor against a real broker: deletes without waits or random failures, shuts down soon.
FAST = {
    "processor_name": "test-processor",
    "delete_batch_interval_seconds": 0,
    "delete_retry_initial_seconds": 0.01,
    "delete_retry_max_seconds": 0.05,
    "delete_error_rate": 0,
    "simulation_seed": 1,
    "processor_shutdown_grace_seconds": 5,
    "processor_http_port": 0,
}

# The intake against a fake consumer and a fake Resonate client (durable mode: a server URL).
FAKE_BACKENDS = {
    "resonate_url": "http://127.0.0.1:9",
    "processor_max_in_flight": 10,
    "processor_handoff_attempts": 3,
    "processor_http_port": 0,
}

# The workflow in Resonate's in-process mode: no waits, seeded errors at the default rate.
IN_PROCESS = {
    "processor_name": "unit",
    "delete_batch_interval_seconds": 0,
    "delete_retry_initial_seconds": 0,
    "delete_retry_max_seconds": 0,
    "simulation_seed": 7,
}


def processor_settings(
    bootstrap: str = NO_BROKER,
    names: Mapping[str, str] | None = None,
    tmp_path: Path | None = None,
    *,
    preset: Mapping[str, object] = FAST,
    **overrides: object,
) -> ProcessorSettings:
    """``names``: the run's topics as the environment spells them (``TOPIC_TOMBSTONES``…);
    ``tmp_path``: where the simulated deletion keeps its ledger; ``overrides`` win over ``preset``."""
    values = {
        "kafka_bootstrap_servers": bootstrap,
        **({"delete_ledger_path": str(tmp_path / "ledger.jsonl")} if tmp_path is not None else {}),
        **preset,
        **as_fields(dict(names or {})),
        **overrides,
    }
    return ProcessorSettings(_env_file=None, **values)
