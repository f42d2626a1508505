"""Test-session services: a real Kafka broker (started here unless one is given)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.kafka import KafkaBroker
from devstack.procs import free_port

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"


@dataclass
class Broker:
    bootstrap: str
    handle: KafkaBroker | None  # None when the broker was given from outside


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> Broker:
    """A real broker: ``TEST_KAFKA_BOOTSTRAP_SERVERS`` if set, else one started for the session."""
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield Broker(given, None)
        return
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka"), CACHE, port=free_port(), controller_port=free_port()
    )
    broker.start()
    try:
        yield Broker(broker.bootstrap_servers, broker)
    finally:
        broker.stop()


@pytest.fixture
def names() -> dict[str, str]:
    """Topic and group names unique to one test, as the services' environment spells them."""
    run = uuid.uuid4().hex[:8]
    return {
        "TOPIC_TOMBSTONES": f"tombstones-{run}",
        "TOPIC_PROCESSED": f"processed-{run}",
        "TOPIC_DLQ": f"tombstones-{run}.dlq",
        "KAFKA_CONSUMER_GROUP": f"processor-{run}",
    }
