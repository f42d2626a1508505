"""A replicated broker (three nodes, as `redpanda.replicas=3` runs Redpanda): topics with three
replicas and min.insync.replicas 2, as setup-topics creates them there, lose no record when one
node dies mid-work (SIGKILL: no clean shutdown), and the pipeline goes on without it."""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient

from devstack.kafka import KafkaCluster
from harness.kafka import read_until
from harness.topics import create_topics, send_tombstones
from tests.conftest import CACHE
from tests.support.pipeline import committed, off_loop, processor_settings, running_processor
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.integration

BEFORE, AFTER = 120, 60  # tombstones produced before the node dies, and while it is away


@pytest.fixture
def three_nodes(tmp_path):
    cluster = KafkaCluster(tmp_path / "kafka", CACHE, size=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def busiest_node(bootstrap: str, topic: str) -> int:
    """The node that leads most partitions of ``topic``."""
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions
    return Counter(p.leader for p in partitions.values()).most_common(1)[0][0]


async def test_losing_one_of_three_brokers_mid_work_loses_no_record(three_nodes, names, uid, tmp_path, mode):
    bootstrap = three_nodes.bootstrap_servers
    create_topics(bootstrap, names, partitions=3, replicas=3, min_insync=2)
    settings = processor_settings(
        bootstrap, names, tmp_path, delete_batch_interval_seconds=0.2, processor_max_in_flight=40, **mode
    )
    before = [Tombstone(id=tid, batches=3) for tid in new_ids(BEFORE, f"repl{uid}")]
    after = [Tombstone(id=tid, batches=1) for tid in new_ids(AFTER, f"repl{uid}b")]
    processed = lambda records: len({r.key for r in records})  # noqa: E731
    async with running_processor(settings) as processor:
        await off_loop(send_tombstones, bootstrap, names, before)
        # mid-work: some completion records written, most tombstones still in flight
        await off_loop(read_until, bootstrap, names["TOPIC_PROCESSED"], lambda r: processed(r) >= BEFORE // 4)
        victim = busiest_node(bootstrap, names["TOPIC_TOMBSTONES"])
        three_nodes.brokers[victim - 1].kill()
        # the two left keep accepting writes (2 in sync = min.insync.replicas) and serving reads
        await off_loop(send_tombstones, bootstrap, names, after)
        records = await off_loop(
            read_until, bootstrap, names["TOPIC_PROCESSED"], lambda r: processed(r) >= BEFORE + AFTER, timeout=240
        )
    keys = Counter(r.key for r in records)
    assert set(keys) == {t.id for t in before + after}, "every tombstone reached processed"
    duplicates = sum(n - 1 for n in keys.values())
    offsets = committed(bootstrap, names)
    print(f"\nnode {victim} of 3 killed after {BEFORE // 4}+ of {BEFORE} completions; "
          f"{BEFORE + AFTER} tombstones processed, {duplicates} duplicate records, "
          f"{processor.state.consumed - (BEFORE + AFTER)} records delivered again (commits in flight "
          f"when the group's coordinator moved); committed {offsets}")
    assert sum(offsets.values()) == BEFORE + AFTER, "offsets committed to the end, on the surviving nodes"
