"""Processor processes in the durable-mode and end-to-end tests: their environments, their end,
and the one line a command that gives up prints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.processes import ProcessorProcess


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


@contextmanager
def terminating(*processors: ProcessorProcess) -> Iterator[None]:
    """SIGTERM ``processors`` (in this order) when the block ends, however it ends. When the block
    succeeded, each must have exited 0; when it failed, its own failure is the one reported."""
    try:
        yield
    finally:
        statuses = {processor.name: processor.terminate() for processor in processors}
    unclean = {name: status for name, status in statuses.items() if status != 0}
    assert not unclean, f"exit status after SIGTERM (None: killed after the timeout): {unclean}"


def the_error_line(output: str, last: bool = True) -> str:
    """The one ``error:`` line of a command's output; the last line unless ``last`` is False (as
    through ``kubectl exec``, which adds its own line after it)."""
    lines = output.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    if last:
        assert lines and errors == [lines[-1]], f"one error line, and the last:\n{output[-3000:]}"
    else:
        assert len(errors) == 1, f"one error line:\n{output[-3000:]}"
    return errors[0]
