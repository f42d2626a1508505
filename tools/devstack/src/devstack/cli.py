"""``devstack``: start, stop and inspect the local stack; run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devstack.procs import StackError
from devstack.stack import Stack

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _stack() -> Stack:
    root = Path.cwd()
    if not (root / "pyproject.toml").exists():
        raise typer.BadParameter("run devstack from the repository root")
    return Stack(root)


def _guard(action):
    try:
        return action()
    except StackError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def up() -> None:
    """Start Kafka (and the Resonate server when a binary is available, on SQLite or, with
    STACK_RESONATE_STORAGE=postgres, on a local PostgreSQL); add their addresses to .env."""
    env, added = _guard(_stack().up)
    for name, value in env.items():
        typer.echo(f"{name}={value}")
    if added:
        typer.echo(f".env: added {', '.join(added)} (in the block marked `added by make up`; make down removes it)")
    else:
        typer.echo(".env: already sets these")
    if "RESONATE_URL" not in env:
        typer.echo("no resonate binary found: the processor will run in LOCAL mode (not durable)")


@app.command()
def down() -> None:
    """Stop everything `up` started (data stays in .stack/ until `make clean`)."""
    stopped = _guard(_stack().down)
    typer.echo(f"stack stopped ({', '.join(stopped) or 'nothing was running'})")


@app.command()
def status() -> None:
    """Show what is running."""
    for name, state in _guard(_stack().status).items():
        typer.echo(f"{name:9} {state}")


@app.command()
def jaeger() -> None:
    """Build Jaeger v2 from its Go module into .cache/bin (once; several minutes)."""
    from devstack.jaeger import ensure_binary

    binary = _guard(lambda: ensure_binary(_stack().root))
    typer.echo(f"jaeger: {binary}")


@app.command("kafka-jars")
def kafka_jars() -> None:
    """Resolve the Kafka broker's jars from Maven Central into .cache (once); print their folder."""
    from devstack.kafka import ensure_jars

    typer.echo(_guard(lambda: ensure_jars(_stack().cache)))


@app.command()
def trace(
    tombstone: Annotated[str, typer.Argument(help="Tombstone id (or trace id).")],
    jaeger_url: Annotated[str | None, typer.Option("--jaeger", help="Jaeger query URL.")] = None,
    lookback: Annotated[str, typer.Option(help="How far back to search, e.g. 1h, 24h.")] = "24h",
) -> None:
    """Print a tombstone's trace from Jaeger: span tree, durations, processors, errors."""
    from rich.console import Console

    from devstack.jaeger import Jaeger
    from devstack.trace import find_trace, trace_tree

    url = jaeger_url or Jaeger(_stack().home / "jaeger", _stack().root).query_url
    found = _guard(lambda: find_trace(url, tombstone, lookback))
    if found is None:
        typer.secho(f"no trace of {tombstone} in Jaeger at {url} (last {lookback})", fg="red", err=True)
        raise typer.Exit(1)
    Console(soft_wrap=True).print(trace_tree(found))


@app.command()
def demo(
    count: Annotated[int, typer.Option("-n", min=1, help="Tombstones to produce.")] = 25,
    batch_interval: Annotated[float, typer.Option(help="Seconds between batches.")] = 1.0,
) -> None:
    """Run the whole pipeline once, show it working, stop what it started."""
    from devstack.demo import run_demo

    _guard(lambda: run_demo(_stack(), count, batch_interval))


def main() -> None:
    app()
