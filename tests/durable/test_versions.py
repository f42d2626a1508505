"""Changing the workflow while workflows sleep: a rolling upgrade from the current version to the next
(`tests/support/next_release.py`; "v1" and "v2" below are the current and the next)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from devstack.procs import wait_until
from tests.conftest import REPO
from tests.support.faults import Kill, judge
from harness.kafka import read_until
from tests.support.next_release import VERSION_LOG
from harness.ledger import read_ledger
from harness.topics import create_topics, send_tombstones
from harness.processes import ProcessorProcess
from tests.support.processes import durable_env, terminating
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.durable


def test_workflows_started_on_version_1_finish_beside_version_2_with_nothing_lost_or_rerun(
    private_stack, names, uid, tmp_path
):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=2)
    version_log = tmp_path / "versions.jsonl"
    env = durable_env(
        broker, server, names, tmp_path, DELETE_BATCH_INTERVAL_SECONDS="3",
        **{VERSION_LOG: str(version_log), "PYTHONPATH": str(REPO)},
    )
    next_release = [sys.executable, "-m", "tests.support.next_release"]
    ledger = lambda: read_ledger(tmp_path / "ledger.jsonl")  # noqa: E731

    old = [Tombstone(id=tid, batches=3) for tid in new_ids(10, f"v1{uid}")]
    first = [ProcessorProcess(name, env, tmp_path) for name in ("a", "b")]
    for processor in first:
        processor.start()
    send_tombstones(broker.bootstrap_servers, names, old)
    # every old workflow finished its first batch and sleeps
    wait_until(lambda: {e["id"] for e in ledger() if e["ok"]} >= {t.id for t in old}, 60, "all asleep after batch 1")
    kills = []
    for processor in first:
        pid = processor.pid
        assert processor.terminate() == 0
        kills.append(Kill(time.time(), pid, "SIGTERM"))

    upgraded = ProcessorProcess("c", env, tmp_path, command=next_release)
    previous = ProcessorProcess("d", env, tmp_path)
    upgraded.start()
    previous.start()
    new = [Tombstone(id=tid, batches=2) for tid in new_ids(10, f"v2{uid}")]
    with terminating(upgraded, previous):
        send_tombstones(broker.bootstrap_servers, names, new)
        ids = [t.id for t in old + new]
        records = read_until(
            broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: {x.key for x in r} >= set(ids), timeout=180
        )
        upgraded_pid = upgraded.pid

    verdict = judge(ids, [(r.key, r.value) for r in records], ledger(), kills)
    assert verdict.lost == [] and verdict.duplicates == 0
    assert verdict.unexplained_redos == [], "no finished step ran again"
    on_v2 = [json.loads(line)["id"] for line in version_log.read_text().splitlines()] if version_log.exists() else []
    assert not set(on_v2) & {t.id for t in old}, "a version 1 workflow never ran version 2 code"
    assert on_v2, "the upgraded processor started new workflows on version 2"
    assert len(on_v2) == len(set(on_v2)), "version 2's first step ran once per workflow"
    resumed_on_upgraded = {e["id"] for e in ledger() if e["pid"] == upgraded_pid} & {t.id for t in old}
    assert resumed_on_upgraded, "version 1 workflows resumed on the upgraded processor too"


async def test_a_version_2_workflow_under_a_dotted_id_keeps_resuming_under_todays_code(
    kafka, resonate_server, names, uid, tmp_path
):
    """Before generations, a workflow's id was the tombstone id, dots and all (which the SDK after
    0.8.1 refuses in new ids). One started that way on version 2, asleep when its processor stops,
    resumes on today's processor under that id and finishes, each batch run once."""
    import asyncio

    from resonate.resonate import Resonate

    from tests.support.pipeline import processor_settings, running_processor, successful_batches
    from tombstone_common.messages import SourcePosition
    from tombstone_processor.tracing import TraceContext
    from tombstone_processor.workflow import WORKFLOW, Job, register_workflows

    create_topics(kafka.bootstrap, names, partitions=1)
    legacy_id = f"{uid}.legacy.1"
    settings = processor_settings(
        kafka.bootstrap, names, tmp_path, resonate_url=resonate_server.url, resonate_ttl_seconds=4,
        delete_batch_interval_seconds=2,
    )
    job = Job.received(
        Tombstone(id=legacy_id, batches=3), SourcePosition(topic=names["TOPIC_TOMBSTONES"], partition=0, offset=0),
        legacy_id.encode(), Tombstone(id=legacy_id, batches=3).to_value(), TraceContext({}, "0" * 16),
    )
    starter = Resonate(url=resonate_server.url, group=names["RESONATE_GROUP"], sources=[], autostart=False)
    register_workflows(starter)
    async with running_processor(settings):
        handle = starter.options(version=2).rpc(legacy_id, WORKFLOW, job)  # as a version-2 processor did
        assert await handle.id() == legacy_id
        await asyncio.to_thread(
            wait_until, lambda: (legacy_id, 1) in successful_batches(settings), 60, "batch 1 done, asleep"
        )
    async with running_processor(settings):  # today's processor, after the first one stopped
        records = await asyncio.to_thread(
            read_until, kafka.bootstrap, names["TOPIC_PROCESSED"], lambda rs: any(r.key == legacy_id for r in rs), 90
        )
    root = await starter.promises.get(legacy_id)
    await starter.stop()
    assert root.state == "resolved" and root.param.data["version"] == 2
    (record,) = [r.json() for r in records if r.key == legacy_id]
    assert (record["batches"], record["generation"], record["status"]) == (3, 0, "processed")
    assert {key: n for key, n in successful_batches(settings).items() if key[0] == legacy_id} == {
        (legacy_id, 1): 1, (legacy_id, 2): 1, (legacy_id, 3): 1
    }
