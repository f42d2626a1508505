"""``record-admin``: list and replay dead letters, show or cancel one tombstone.

Exit codes: 0 done; 1 nothing done (an unknown or finished id, a letter the broker refused);
2 bad configuration or usage, or a broker or server that is not there (one line on stderr).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tombstone_common.kafka import BrokerUnavailable, KafkaAccessError
from tombstone_common.settings import CONFIGURATION_HELP, fail, load_settings
from tombstone_processor.admin import letters as dlq
from tombstone_processor.admin import story as stories
from tombstone_processor.admin import workflows
from tombstone_processor.admin.topics import TopicMissing
from tombstone_processor.settings import AdminSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Day-two operations on the pipeline. " + CONFIGURATION_HELP)
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter topic (TOPIC_DLQ).")
app.add_typer(dlq_app, name="dlq")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
#: Bars only for work long enough to watch.
PROGRESS_FROM = 1000


# ── options shared by list and replay ───────────────────────────────────────

ClassOption = Annotated[str | None, typer.Option("--class", help="Only letters of this error class (e.g. DeleteFailed, InvalidRecord).")]
PrefixOption = Annotated[str | None, typer.Option("--prefix", help="Only tombstone ids starting with this.")]
SinceOption = Annotated[str | None, typer.Option(help="Only letters written at or after: ISO 8601 time, or an age like 30m, 2h, 1d.")]
UntilOption = Annotated[str | None, typer.Option(help="Only letters written before: ISO 8601 time, or an age.")]

_AGE = re.compile(r"^(\d+)([smhd])$")


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    age = _AGE.match(text)
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[age[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(age[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is neither an ISO 8601 time nor an age like 30m, 2h, 1d")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter(error_class: str | None, prefix: str | None, since: str | None, until: str | None) -> dlq.LetterFilter:
    return dlq.LetterFilter(error_class, prefix, _when(since, "--since"), _when(until, "--until"))


@contextmanager
def _reachable(settings: AdminSettings) -> Iterator[None]:
    """A broker or server that is not there, or a missing topic: one line, exit 2."""
    try:
        yield
    except (BrokerUnavailable, KafkaAccessError) as exc:  # away, or refusing this client (TLS, SASL)
        fail(str(exc))
    except TopicMissing as exc:
        fail(f"{exc} (run setup-topics)")
    except KafkaException as exc:
        fail(f"kafka at {settings.kafka_bootstrap_servers}: {exc}")
    except workflows.ServerUnavailable as exc:
        fail(f"resonate server at {settings.resonate_url}: not reachable or refused the request ({exc})")


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """``update(done, total)``; shown on stderr once the total is worth a bar."""
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, visible=False)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM)

        yield update


def _settings() -> AdminSettings:
    return load_settings(AdminSettings)


def _server(settings: AdminSettings, command: str) -> None:
    if settings.resonate_url is None:
        fail(f"{command} needs the Resonate server: set RESONATE_URL (in local mode workflows live inside one processor)")


def _on_server[T](settings: AdminSettings, work: Callable[[workflows.Resonate], Awaitable[T]]) -> T:
    async def run() -> T:
        resonate = workflows.client(settings)
        try:
            return await work(resonate)
        finally:
            await resonate.stop()

    with _reachable(settings):
        return asyncio.run(run())


# ── dlq list ────────────────────────────────────────────────────────────────

@dlq_app.command("list", epilog=CONFIGURATION_HELP)
def dlq_list(
    error_class: ClassOption = None,
    prefix: PrefixOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, for scripts.")] = False,
) -> None:
    """The dead letters: id, generation, failure class, reason, where the record came from, when."""
    settings = _settings()
    keep = _filter(error_class, prefix, since, until)
    with _reachable(settings), _bar(f"reading {settings.topic_dlq}") as progress:
        found = dlq.dead_letters(settings, keep, progress)
    if as_json:
        for letter in found:
            out.print_json(json.dumps(letter.as_json()), indent=None)
        return
    table = Table(title=f"{len(found)} dead letters in {settings.topic_dlq}", title_justify="left")
    for column in ("id", "gen", "class", "reason", "source", "dlq", "time"):
        table.add_column(column, overflow="fold")
    for letter in found:
        source = f"{letter.source.topic}/{letter.source.partition}@{letter.source.offset}" if letter.source else "-"
        table.add_row(
            letter.id or "-", str(letter.generation), letter.error_class, letter.reason, source,
            f"{letter.record.partition}@{letter.record.offset}", _iso(letter.time),
        )
    out.print(table)


# ── dlq replay ──────────────────────────────────────────────────────────────

@dlq_app.command("replay", epilog=CONFIGURATION_HELP)
def dlq_replay(
    replay_all: Annotated[bool, typer.Option("--all", help="Every letter (without a filter, --all is required).")] = False,
    error_class: ClassOption = None,
    prefix: PrefixOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be replayed, and do nothing.")] = False,
    max_replays: Annotated[int | None, typer.Option(min=0, help="Loop guard; default DLQ_MAX_REPLAYS.")] = None,
) -> None:
    """Put dead letters back on the tombstones topic, each as its tombstone's next generation: a
    new workflow that really runs again. The newest letter of each tombstone is replayed; one
    replayed DLQ_MAX_REPLAYS times already stays in the DLQ. Safe to repeat: the same letter
    replayed twice joins the workflow of its first replay."""
    settings = _settings()
    if not (replay_all or error_class or prefix or since or until):
        fail("say which letters: --class, --prefix, --since, --until, or --all")
    guard = settings.dlq_max_replays if max_replays is None else max_replays
    keep = _filter(error_class, prefix, since, until)
    with _reachable(settings), _bar(f"reading {settings.topic_dlq}") as progress:
        plan = dlq.plan_replay(dlq.dead_letters(settings, keep, progress), guard)
    for letter in plan.kept:
        err.print(f"kept {letter.id or '-'} ({letter.record.position}): {dlq.kept_reason(letter, guard)}")
    if dry_run:
        for letter in plan.replay:
            out.print(f"would replay {letter.id} as generation {letter.generation + 1} ({letter.record.position}: {letter.error_class})")
        out.print(_summary(plan, "would replay", len(plan.replay)))
        return
    with _reachable(settings), _bar(f"replaying to {settings.topic_tombstones}") as progress:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            progress(done, len(plan.replay))

        report = dlq.replay(settings, plan.replay, advance)
    for failure in report.failed[:20]:
        err.print(f"failed {failure}")
    out.print(_summary(plan, "replayed", report.replayed) + (f", {len(report.failed)} failed" if report.failed else ""))
    if report.failed:
        raise typer.Exit(1)


def _summary(plan: dlq.ReplayPlan, verb: str, count: int) -> str:
    return (
        f"{verb} {count} tombstones; kept {len(plan.kept)} in the DLQ; "
        f"{len(plan.superseded)} older letters of the same tombstones skipped"
    )


# ── status ──────────────────────────────────────────────────────────────────

@app.command(epilog=CONFIGURATION_HELP)
def status(
    tombstone_id: Annotated[str, typer.Argument(metavar="ID", help="The tombstone id.")],
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False,
) -> None:
    """One tombstone's story: its records, its workflows and their state, batches and retries, its
    sleep deadline, its processed or dead-letter record, and its trace id."""
    settings = _settings()
    with _reachable(settings), _bar("reading the topics") as progress:
        story = stories.read_records(settings, tombstone_id, progress)
    if settings.resonate_url is not None:
        story.workflows = _on_server(
            settings, lambda resonate: workflows.generations(resonate, tombstone_id, story.known_generation)
        )
    if story.empty:
        err.print(f"tombstone {tombstone_id}: not on {settings.topic_tombstones}, {settings.topic_processed} or {settings.topic_dlq}, and no workflow on the server")
        raise typer.Exit(1)
    if as_json:
        out.print_json(json.dumps(_story_json(story)), indent=None)
        return
    _print_story(story, settings)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _print_story(story: stories.Story, settings: AdminSettings) -> None:
    out.print(f"[bold]tombstone {story.id}[/bold]")
    for produced in story.produced:
        replay = f", replay of {produced.replayed_from}" if produced.replayed_from else ""
        out.print(f"  produced  {produced.record.position} at {_iso(produced.record.timestamp)} (generation {produced.generation}{replay})")
    if settings.resonate_url is None:
        out.print("  workflows not shown: RESONATE_URL is not set (local mode keeps them inside a processor)")
    for flow in story.workflows:
        out.print(f"  workflow  {flow.id} (generation {flow.generation}, version {flow.version or '?'}): {flow.state}")
        out.print(f"            {flow.batches} batches done, {flow.retries} retries, started {_iso(flow.created_at)}")
        if flow.sleeping_until is not None:
            out.print(f"            asleep until {_iso(flow.sleeping_until)}")
        elif flow.deleting:
            out.print("            deleting a batch now")
        if flow.settled_at is not None:
            result = f" ({flow.outcome.get('status')})" if flow.outcome else ""
            out.print(f"            ended {_iso(flow.settled_at)}{result}")
        trace = stories.trace_id(flow.trace_parent)
        if trace:
            out.print(f"            trace {trace}")
    for published in story.published:
        record = published.processed
        out.print(
            f"  {record.status:<9} {published.record.position} generation {record.generation}: {record.batches} batches, "
            f"{record.attempts} attempts, input {record.source.topic}/{record.source.partition}@{record.source.offset}, "
            f"by {record.processor} at {_iso(record.completed_at)}"
        )
    for letter in story.letters:
        out.print(
            f"  dead      {letter.record.position} generation {letter.generation} at {_iso(letter.time)}: "
            f"{letter.error_class}: {letter.reason}"
        )


def _story_json(story: stories.Story) -> dict[str, object]:
    return {
        "id": story.id,
        "produced": [
            {"position": p.record.position, "time": _iso(p.record.timestamp), "generation": p.generation, "replayed_from": p.replayed_from}
            for p in story.produced
        ],
        "workflows": [
            {
                "id": w.id, "generation": w.generation, "version": w.version, "state": w.state,
                "batches": w.batches, "retries": w.retries, "deleting": w.deleting,
                "sleeping_until": _iso(w.sleeping_until) if w.sleeping_until else None,
                "started": _iso(w.created_at), "ended": _iso(w.settled_at) if w.settled_at else None,
                "outcome": w.outcome, "trace_id": stories.trace_id(w.trace_parent),
            }
            for w in story.workflows
        ],
        "processed": [{"position": p.record.position, **p.processed.model_dump(mode="json")} for p in story.published],
        "dead_letters": [letter.as_json() for letter in story.letters],
    }


# ── cancel ──────────────────────────────────────────────────────────────────

@app.command(epilog=CONFIGURATION_HELP)
def cancel(
    tombstone_id: Annotated[str, typer.Argument(metavar="ID", help="The tombstone id.")],
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for a workflow that is deleting to reach its next sleep.")] = 60.0,
) -> None:
    """Stop the tombstone's running workflow at its next step boundary: it publishes a processed
    record with status cancelled, and its input offset is committed as for any other end. An
    unknown or finished id is left as it is (exit 1)."""
    settings = _settings()
    _server(settings, "cancel")
    by = f"record-admin on {socket.gethostname()}"

    async def work(resonate: workflows.Resonate) -> workflows.Cancelled:
        return await workflows.cancel(resonate, tombstone_id, 0, by, wait)

    try:
        done = _on_server(settings, work)
    except workflows.CannotCancel as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    flow = done.workflow
    out.print(
        f"cancelled {tombstone_id}: workflow {flow.id} (generation {flow.generation}) woken after "
        f"{flow.batches} batches; it publishes its processed record as cancelled"
    )


def main() -> None:
    app()
