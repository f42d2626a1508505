"""The probes tell the truth about the consumer, against a real broker: a processor whose broker
stayed away past the session timeout lost its partitions, and /readyz says so (beside the broker
being unreachable) until it rejoined."""

from __future__ import annotations

import json

import pytest

from devstack.kafka import KafkaBroker
from devstack.procs import wait_until
from tests.conftest import CACHE
from harness.topics import create_topics
from devstack.procs import http_get
from harness.processes import ProcessorProcess
from tests.support.processes import terminating

pytestmark = pytest.mark.e2e


def test_readyz_drops_the_consumer_while_its_partitions_are_lost(names, tmp_path):
    broker = KafkaBroker.on_free_ports(tmp_path / "kafka", CACHE)
    broker.start()
    try:
        create_topics(broker.bootstrap_servers, names, partitions=2)
        env = {**names, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "KAFKA_SESSION_TIMEOUT_MS": "6000"}
        processor = ProcessorProcess("p", env, tmp_path)
        processor.start()
        with terminating(processor):
            broker.stop()
            problems: dict[str, str] = {}

            def lost_reported() -> bool:
                status, body = http_get(processor.url + "/readyz")
                problems.update(json.loads(body).get("problems", {}) if body else {})
                return status == 503 and "lost its partitions" in problems.get("consumer", "")

            wait_until(lost_reported, 60, "/readyz reports the lost partitions")
            assert "broker unreachable" in problems["broker"], "both reasons in the body"
            assert http_get(processor.url + "/healthz")[0] == 200, "nothing pending: alive"
            broker.start()
            wait_until(lambda: http_get(processor.url + "/readyz")[0] == 200, 90, "ready again after rejoining")
    finally:
        broker.stop()
