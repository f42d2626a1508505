"""``record-producer -n N``: produce N tombstones and report where they went."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from tombstone_common.kafka import KafkaAccessError, check_broker_access
from tombstone_common.logs import configure_logging, get_logger
from tombstone_common.messages import Tombstone
from tombstone_common.settings import CONFIGURATION_HELP, PipelineSettings, fail, load_settings
from tombstone_common.telemetry import configure_tracing, shutdown_tracing
from tombstone_producer.produce import new_ids, produce

app = typer.Typer(add_completion=False)
log = get_logger(__name__)
PROGRESS_THRESHOLD = 1000


@app.command(epilog=CONFIGURATION_HELP)
def record_producer(
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many tombstones.")] = 1,
    batches: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Fix the number of delete batches per tombstone."),
    ] = None,
    error_rate: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Fix the per-attempt failure probability."),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Id prefix (ids are <prefix>-000001…); random by default.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Records per second (default: as fast as possible).")
    ] = None,
    print_ids: Annotated[bool, typer.Option(help="Print each produced id on stdout.")] = False,
) -> None:
    """Put tombstones on the tombstones topic (key = id, value = JSON object)."""
    settings = load_settings(PipelineSettings)
    configure_logging(settings, "producer")
    configure_tracing("producer")
    try:
        tombstones = [
            Tombstone(id=tid, batches=batches, error_rate=error_rate)
            for tid in new_ids(count, prefix)
        ]
    except ValidationError as exc:
        fail(f"invalid --prefix {prefix!r}: {exc.errors()[0]['msg']}")
    try:
        check_broker_access(settings)
    except KafkaAccessError as exc:
        fail(str(exc))
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=count < PROGRESS_THRESHOLD,
    ) as bar:
        task = bar.add_task("producing", total=count)
        report = produce(settings, tombstones, rate, progress=lambda n: bar.advance(task, n))
    if print_ids:
        for tombstone in tombstones:
            typer.echo(tombstone.id)
    log.info(
        "produced tombstones",
        topic=settings.topic_tombstones,
        delivered=report.delivered,
        failed=len(report.failed),
        seconds=round(report.seconds, 3),
        partitions=dict(sorted(report.partitions.items())),
    )
    spread = ", ".join(f"p{p}:{n}" for p, n in sorted(report.partitions.items()))
    console.print(
        f"produced {report.delivered}/{count} tombstones to {settings.topic_tombstones} "
        f"in {report.seconds:.2f}s ({spread})",
        soft_wrap=True,  # one line, whatever the terminal's width (logs are read by line)
    )
    if report.failed:
        for failure in report.failed[:10]:
            console.print(f"[red]failed[/red] {failure}")
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    finally:
        shutdown_tracing()
