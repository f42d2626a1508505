"""Environments of processor processes in the durable-mode tests."""

from __future__ import annotations

from pathlib import Path


def durable_env(broker, server, names: dict[str, str], run_dir: Path, **extra: str) -> dict[str, str]:
    """A processor process's environment against a test's own broker and Resonate server, with
    short leases and a delete ledger in ``run_dir``."""
    return {
        **names,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "RESONATE_URL": server.url,
        "RESONATE_TTL_SECONDS": "4",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DELETE_ERROR_RATE": "0",
        "DELETE_LEDGER_PATH": str(run_dir / "ledger.jsonl"),
        "PROCESSOR_SHUTDOWN_GRACE_SECONDS": "5",
        **extra,
    }
