"""SIGTERM while the broker is down: the processor does not wait for it."""

from __future__ import annotations

import time

import pytest

from devstack.kafka import KafkaBroker
from devstack.procs import wait_until
from tests.conftest import CACHE
from harness.topics import create_topics, send_tombstones
from harness.processes import ProcessorProcess, metric
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.e2e


def test_sigterm_while_the_broker_is_down_exits_by_itself(names, uid, tmp_path):
    broker = KafkaBroker.on_free_ports(tmp_path / "kafka", CACHE)
    broker.start()
    try:
        create_topics(broker.bootstrap_servers, names, partitions=2)
        env = {
            **names,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DELETE_ERROR_RATE": "0",
            "DELETE_BATCH_INTERVAL_SECONDS": "0.2",
            "PROCESSOR_SHUTDOWN_GRACE_SECONDS": "2",
        }
        processor = ProcessorProcess("p", env, tmp_path)
        processor.start()
        send_tombstones(broker.bootstrap_servers, names, [Tombstone(id=t, batches=1000) for t in new_ids(3, f"bd{uid}")])
        wait_until(lambda: metric(processor.metrics(), "tombstones_in_flight") == 3, 60, "three workflows running")
        broker.stop()
        began = time.monotonic()
        status = processor.terminate(timeout=60)
        print(f"SIGTERM → exit with the broker down: {time.monotonic() - began:.2f}s (grace 2s)")
        assert status == 0
    finally:
        broker.stop()
