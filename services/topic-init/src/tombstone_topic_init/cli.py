"""``setup-topics``: wait for the broker, create the topics, print what was done."""

from __future__ import annotations

import time

import typer
from confluent_kafka import KafkaException

from tombstone_common.kafka import BrokerUnavailable, KafkaAccessError, wait_for_broker
from tombstone_common.logs import configure_logging, get_logger
from tombstone_common.settings import CONFIGURATION_HELP, fail, load_settings
from tombstone_topic_init.topics import TooFewBrokers, TopicInitSettings, ensure_topics

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger(__name__)


@app.command(epilog=CONFIGURATION_HELP)
def setup_topics() -> None:
    """Create the tombstones, processed and dead-letter topics if they are missing."""
    settings = load_settings(TopicInitSettings)
    configure_logging(settings, "topic-init")
    started = time.monotonic()
    replicas = settings.topic_replication_factor

    def waiting(count: int) -> None:
        typer.echo(f"waiting for {replicas} brokers (TOPIC_REPLICATION_FACTOR): {count} so far")

    try:
        admin = wait_for_broker(settings, settings.broker_wait_seconds)
        left = max(0.0, settings.broker_wait_seconds - (time.monotonic() - started))
        outcomes = ensure_topics(admin, settings, broker_wait=left, report=waiting)
    except (BrokerUnavailable, TooFewBrokers) as exc:
        fail(str(exc), code=1)
    except KafkaAccessError as exc:
        fail(str(exc))
    except KafkaException as exc:
        fail(f"creating topics failed: {exc.args[0].str()}", code=1)
    for outcome in outcomes:
        log.info(
            "topic ready",
            topic=outcome.name,
            created=outcome.created,
            partitions=outcome.partitions,
        )
        state = "created" if outcome.created else "exists "
        typer.echo(f"{state} {outcome.name} ({outcome.partitions} partitions)")


def main() -> None:
    app()
