"""``record-processor``: run until SIGTERM/SIGINT, then shut down in order."""

from __future__ import annotations

import asyncio
import signal

import typer

from tombstone_common.kafka import KafkaAccessError, check_broker_access
from tombstone_common.logs import configure_logging, get_logger
from tombstone_common.settings import CONFIGURATION_HELP, fail, load_settings
from tombstone_common.telemetry import configure_tracing, shutdown_tracing
from tombstone_processor.app import Processor
from tombstone_processor.settings import ProcessorSettings

app = typer.Typer(add_completion=False)
log = get_logger(__name__)


async def _serve(settings: ProcessorSettings) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("second signal: exiting now")
            raise SystemExit(1)
        log.info("signal received, draining", signal=signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    processor = Processor(settings)
    code = await processor.run(stopping)
    processor.kafka_errors.raise_refusal()  # the broker refused a client: the last line says why
    return code


@app.command(epilog=CONFIGURATION_HELP)
def record_processor() -> None:
    """Consume tombstones and run one durable Resonate workflow per tombstone."""
    settings = load_settings(ProcessorSettings)
    configure_logging(settings, "processor")
    configure_tracing("processor")
    try:
        check_broker_access(settings)
        code = asyncio.run(_serve(settings))
    except KafkaAccessError as exc:
        fail(str(exc))
    finally:
        shutdown_tracing()
    if code:
        raise SystemExit(code)


def main() -> None:
    app()
