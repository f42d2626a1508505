"""`make demo`: the whole pipeline once, as local processes, narrated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from devstack.procs import Managed, StackError, wait_until
from devstack.stack import Stack
from devstack.trace import find_trace, trace_tree
from tombstone_common.messages import ProcessedRecord

DEADLINE_SECONDS = 300
console = Console(width=None if sys.stdout.isatty() else 110)


def _run(argv: list[str], env: dict[str, str]) -> str:
    """Run a command; show its summary lines (its logs only when it fails)."""
    quiet = {"LOG_LEVEL": "ERROR", "LOG_FORMAT": "json", "COLUMNS": "160"}
    result = subprocess.run(argv, env={**os.environ, **env, **quiet}, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    summary = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("{")]
    return "\n".join(summary)


def run_demo(stack: Stack, count: int, batch_interval: float) -> None:
    with ExitStack() as cleanup:
        env = _start_stack(stack, cleanup)
        mode = (
            f"durable, Resonate server on {'PostgreSQL' if stack.postgres else 'SQLite'}"
            if "RESONATE_URL" in env else "LOCAL mode, no Resonate server"
        )
        console.rule(f"[bold]tombstone pipeline demo[/bold] ({mode})")

        console.print(_run([_bin("setup-topics")], env).strip())

        processor = Managed("demo-processor", stack.home)
        processor.spawn(
            [_bin("record-processor")],
            env={**env, "DELETE_BATCH_INTERVAL_SECONDS": str(batch_interval), "LOG_FORMAT": "json"},
        )
        cleanup.callback(_stop_processor, processor)
        console.print(f"processor started (pid {processor.pid()}, log {processor.log_file})")

        prefix = f"demo-{uuid.uuid4().hex[:6]}"
        console.print(_run([_bin("record-producer"), "-n", str(count), "--prefix", prefix], env).strip())

        records = _follow(env["KAFKA_BOOTSTRAP_SERVERS"], prefix, count, processor)
        _summarise(records)
        if stack.jaeger is not None and records:
            _, slowest, trace_id = max(records, key=lambda r: r[1].batches)
            console.print(f"trace of {slowest.id} ({slowest.batches} batches), "
                          f"JSON at {stack.jaeger.query_url}/api/traces/{trace_id}:")
            _print_trace(stack.jaeger.query_url, trace_id)
            console.print(f"[dim](while `make up` runs: make trace ID={slowest.id})[/dim]")


def _print_trace(query_url: str, trace_id: str) -> None:
    """The trace as a tree once its last span (the processed record's send) is in Jaeger."""
    def complete() -> bool:
        found = find_trace(query_url, trace_id)
        return found is not None and any(s["operationName"].startswith("send processed") for s in found["spans"])

    try:
        wait_until(complete, 15, "the trace in Jaeger")
    except StackError:
        pass  # print what is there
    if (found := find_trace(query_url, trace_id)) is not None:
        console.print(trace_tree(found))


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _start_stack(stack: Stack, cleanup: ExitStack) -> dict[str, str]:
    """Start what is not running yet (and stop only that at the end); return the services' env."""
    for component in stack.components():
        if not component.process.running():
            console.print(f"starting {component.process.name} …")
            component.start()
            cleanup.callback(component.stop)
    if stack.resonate is None:
        console.print(
            "[yellow]no resonate binary on PATH or in RESONATE_SERVER_BIN: "
            "the processor runs in local mode (not durable)[/yellow]"
        )
    if stack.jaeger is None:
        console.print("[dim]tracing off: `make jaeger` builds Jaeger once (several minutes)[/dim]")
    return stack.env()


def _stop_processor(processor: Managed) -> None:
    processor.signal(signal.SIGTERM)
    processor.stop(timeout=30)
    console.print("processor stopped")


def _follow(bootstrap: str, prefix: str, count: int, processor: Managed) -> list[tuple[int, ProcessedRecord, str]]:
    """Print each completion as it arrives; return (output offset, record, trace id) in order."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"demo-reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([os.environ.get("TOPIC_PROCESSED", "processed")])
    seen: list[tuple[int, ProcessedRecord, str]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    console.print(f"waiting for {count} completions (each: input position → output position)")
    try:
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise StackError(f"only {len(seen)}/{count} completed in {DEADLINE_SECONDS}s\n{processor.tail()}")
            if not processor.running():
                raise StackError(f"the processor exited\n{processor.tail()}")
            message = consumer.poll(0.5)
            if message is None or message.error() or not message.key().decode().startswith(prefix):
                continue
            record = ProcessedRecord.model_validate_json(message.value())
            traceparent = dict(message.headers() or []).get("traceparent", b"-?-").decode()
            seen.append((message.offset(), record, traceparent.split("-")[1]))
            console.print(
                f"[green]✓[/green] done {len(seen):>3}/{count}  {record.id}  "
                f"tombstones p{record.source.partition}@{record.source.offset} → "
                f"processed p{message.partition()}@{message.offset()}  "
                f"batches={record.batches} retries={record.attempts - record.batches}"
            )
    finally:
        consumer.close()
    return seen


def _summarise(records: list[tuple[int, ProcessedRecord, str]]) -> None:
    table = Table(title="completion order vs. production order")
    for column in ("done #", "produced #", "id", "input", "batches", "retries", "seconds"):
        table.add_column(column, justify="left" if column == "id" else "right", no_wrap=True)
    overtaken = 0
    for rank, (_, record, _) in enumerate(records, start=1):
        produced = int(record.id.rsplit("-", 1)[1])
        overtaken += produced != rank
        seconds = (record.completed_at - record.started_at).total_seconds()
        table.add_row(
            str(rank), str(produced), record.id,
            f"p{record.source.partition}@{record.source.offset}",
            str(record.batches), str(record.attempts - record.batches), f"{seconds:.1f}",
        )
    console.print(table)
    retries = sum(r.attempts - r.batches for _, r, _ in records)
    console.print(
        f"{len(records)} tombstones processed; {overtaken} finished in a different place than "
        f"they were produced (short ones overtake long ones: no head-of-line blocking); "
        f"{retries} failed delete attempts were retried by Resonate."
    )
