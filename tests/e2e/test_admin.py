"""``record-admin`` as an operator runs it, against the real broker and (durable) the real server:
the processor runs in the test's event loop, the command as its own process."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from devstack.procs import free_port, wait_until
from harness.kafka import committed_offsets, read_all, read_until
from harness.processes import BIN, clean_environ
from harness.topics import create_topics, send_tombstones
from tests.conftest import own_resonate_server
from tests.support.pipeline import processor_settings, running_processor, successful_batches
from tombstone_common.messages import GENERATION_HEADER, Tombstone

pytestmark = pytest.mark.e2e

FAILING = {"delete_error_rate": 1.0, "delete_max_attempts": 1}


def admin(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "record-admin"), *args], env={**clean_environ(), **env},
        capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parent,
    )


def admin_env(kafka, names: dict[str, str], mode: dict[str, str], **extra: str) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, **names, **extra}
    if "resonate_url" in mode:
        env["RESONATE_URL"] = mode["resonate_url"]
    return env


def letters(env: dict[str, str], *args: str) -> list[dict]:
    result = admin(env, "dlq", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def processed(kafka, names, count: int) -> list[dict]:
    return [r.json() for r in read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda rs: len(rs) >= count, 90)]


def status(env: dict[str, str], tombstone_id: str) -> dict:
    result = admin(env, "status", tombstone_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def in_thread(call, *args):
    return await asyncio.to_thread(call, *args)


async def test_replayed_letters_run_again_once_their_cause_is_fixed(kafka, names, uid, tmp_path, mode):
    """A bad deploy dead-letters two tombstones (ids with dots); fixed, a replay runs each as
    generation 1, which reaches processed. A second replay while the first runs starts nothing
    twice."""
    create_topics(kafka.bootstrap, names, partitions=1)
    env = admin_env(kafka, names, mode)
    ids = [f"{uid}.order.1", f"{uid}.order.2"]
    bad = processor_settings(kafka.bootstrap, names, tmp_path, **FAILING, **mode)
    async with running_processor(bad) as processor:
        await in_thread(send_tombstones, kafka.bootstrap, names, [Tombstone(id=i, batches=3) for i in ids])
        await in_thread(wait_until, lambda: processor.state.dead_lettered == 2, 90, "both dead-lettered")

    found = await in_thread(letters, env)
    assert sorted(letter["id"] for letter in found) == ids
    assert {(letter["error_class"], letter["generation"]) for letter in found} == {("DeleteFailed", 0)}
    assert all(letter["source"]["topic"] == names["TOPIC_TOMBSTONES"] and letter["time"] for letter in found)
    assert await in_thread(letters, env, "--class", "InvalidRecord") == []
    assert [letter["id"] for letter in await in_thread(letters, env, "--prefix", ids[1])] == [ids[1]]
    story = await in_thread(status, env, ids[0])
    assert [letter["generation"] for letter in story["dead_letters"]] == [0] and story["processed"] == []

    dry = await in_thread(admin, env, "dlq", "replay", "--all", "--dry-run")
    assert dry.returncode == 0 and "would replay 2 tombstones" in dry.stdout, dry.stdout + dry.stderr
    assert len(await in_thread(read_all, kafka.bootstrap, names["TOPIC_TOMBSTONES"])) == 2  # nothing sent

    fixed = processor_settings(kafka.bootstrap, names, tmp_path, **mode)
    async with running_processor(fixed) as processor:
        first, second = await asyncio.gather(
            in_thread(admin, env, "dlq", "replay", "--prefix", uid),
            in_thread(admin, env, "dlq", "replay", "--prefix", uid),
        )
        for result in (first, second):
            assert result.returncode == 0 and "replayed 2 tombstones" in result.stdout, result.stdout + result.stderr
        records = await in_thread(processed, kafka, names, 2)
        await in_thread(wait_until, lambda: processor.state.consumed == 4, 60, "both replays of both letters taken")
        await in_thread(
            wait_until,
            lambda: committed_offsets(kafka.bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"]) == {0: 6},
            60, "every record's offset committed",
        )
    replays = (await in_thread(read_all, kafka.bootstrap, names["TOPIC_TOMBSTONES"]))[2:]
    assert [r.headers[GENERATION_HEADER] for r in replays] == [b"1"] * 4
    assert sorted((r["id"], r["generation"], r["status"], r["batches"]) for r in records) == [
        (i, 1, "processed", 3) for i in ids
    ]
    assert len(await in_thread(read_all, kafka.bootstrap, names["TOPIC_PROCESSED"])) == 2  # one each
    # every batch of generation 1 ran once, whichever replay record was taken first
    assert max(successful_batches(fixed).values()) == 1 and len(successful_batches(fixed)) == 6
    story = await in_thread(status, env, ids[0])
    assert [(p["generation"], p["status"]) for p in story["processed"]] == [(1, "processed")]
    assert sorted(p["generation"] for p in story["produced"]) == [0, 1, 1]


async def test_the_loop_guard_keeps_a_letter_whose_cause_remains(kafka, names, uid, tmp_path, mode):
    create_topics(kafka.bootstrap, names, partitions=1)
    env = admin_env(kafka, names, mode, DLQ_MAX_REPLAYS="1")
    tombstone = Tombstone(id=f"{uid}-poison", batches=2)
    settings = processor_settings(kafka.bootstrap, names, tmp_path, **FAILING, **mode)
    async with running_processor(settings) as processor:
        await in_thread(send_tombstones, kafka.bootstrap, names, [tombstone])
        await in_thread(wait_until, lambda: processor.state.dead_lettered == 1, 90, "dead-lettered")
        result = await in_thread(admin, env, "dlq", "replay", "--all")
        assert result.returncode == 0 and "replayed 1 tombstones" in result.stdout, result.stdout + result.stderr
        await in_thread(wait_until, lambda: processor.state.dead_lettered == 2, 90, "generation 1 dead-lettered")
        again = await in_thread(admin, env, "dlq", "replay", "--all")
    assert again.returncode == 0, again.stderr
    assert "replayed 0 tombstones; kept 1 in the DLQ" in again.stdout
    assert f"kept {tombstone.id}" in again.stderr and "replayed 1 times already (DLQ_MAX_REPLAYS=1)" in again.stderr
    assert [letter["generation"] for letter in await in_thread(letters, env)] == [0, 1]
    assert len(await in_thread(read_all, kafka.bootstrap, names["TOPIC_TOMBSTONES"])) == 2


def cancel_setup(kafka, names, tmp_path, server_url: str, sleep_seconds: float):
    """The topics, record-admin's environment and a processor's settings against ``server_url``."""
    create_topics(kafka.bootstrap, names, partitions=1)
    mode = {"resonate_url": server_url}
    settings = processor_settings(kafka.bootstrap, names, tmp_path, delete_batch_interval_seconds=sleep_seconds, **mode)
    return admin_env(kafka, names, mode), settings


async def test_cancel_stops_a_sleeping_workflow_which_publishes_cancelled(kafka, names, uid, tmp_path, resonate_server):
    """Mid-sleep: cancel wakes the workflow, which publishes processed as cancelled after the one
    batch it did; cancelling it again, or an unknown id, changes nothing (exit 1)."""
    tombstone = Tombstone(id=f"{uid}.sleepy", batches=5)
    env, settings = cancel_setup(kafka, names, tmp_path, resonate_server.url, sleep_seconds=600)
    async with running_processor(settings) as processor:
        await in_thread(send_tombstones, kafka.bootstrap, names, [tombstone])

        def asleep() -> bool:
            flows = status(env, tombstone.id)["workflows"]
            return bool(flows) and flows[-1]["sleeping_until"] is not None

        await in_thread(wait_until, asleep, 60, "the workflow asleep after its first batch")
        story = await in_thread(status, env, tombstone.id)
        (flow,) = story["workflows"]
        assert (flow["state"], flow["batches"], flow["generation"], flow["version"]) == ("pending", 1, 0, 3)
        assert flow["id"] == f"{uid}~dsleepy" and flow["trace_id"]
        assert [p["position"] for p in story["produced"]] == [f"{names['TOPIC_TOMBSTONES']}/0@0"]

        result = await in_thread(admin, env, "cancel", tombstone.id)
        assert result.returncode == 0, result.stdout + result.stderr
        (record,) = await in_thread(processed, kafka, names, 1)
        assert (record["id"], record["status"], record["batches"]) == (tombstone.id, "cancelled", 1)
        await in_thread(wait_until, lambda: processor.state.cancelled == 1, 30, "the processor saw it end")
    assert committed_offsets(kafka.bootstrap, names["KAFKA_CONSUMER_GROUP"], names["TOPIC_TOMBSTONES"]) == {0: 1}
    assert successful_batches(settings) == Counter({(tombstone.id, 1): 1})

    again = await in_thread(admin, env, "cancel", tombstone.id)
    assert again.returncode == 1 and "has ended (resolved): nothing to cancel" in again.stderr
    unknown = await in_thread(admin, env, "cancel", f"{uid}-never-seen")
    assert unknown.returncode == 1 and "no workflow" in unknown.stderr
    ended = await in_thread(status, env, tombstone.id)
    assert ended["workflows"][0]["state"] == "resolved" and ended["workflows"][0]["outcome"]["status"] == "cancelled"
    assert [p["status"] for p in ended["processed"]] == ["cancelled"]


async def test_cancel_skips_a_sleep_past_its_deadline_that_the_server_has_not_settled_yet(
    kafka, names, uid, tmp_path, resonate_store
):
    """The server settles expired promises on a timer (1 s by default, 3 s here): until then an
    expired sleep still looks pending, and resolving it settles it as timed out instead, so the
    workflow deletes on. Cancel notices, and lands on a later sleep: the workflow ends cancelled."""
    server = own_resonate_server(tmp_path / "server", resonate_store, timer_poll_ms=3000)
    server.start()
    try:
        tombstone = Tombstone(id=f"{uid}-busy", batches=1000)
        env, settings = cancel_setup(kafka, names, tmp_path, server.url, sleep_seconds=0.2)
        async with running_processor(settings) as processor:
            await in_thread(send_tombstones, kafka.bootstrap, names, [tombstone])
            await in_thread(wait_until, lambda: successful_batches(settings)[(tombstone.id, 2)] == 1, 60, "two batches")
            result = await in_thread(admin, env, "cancel", tombstone.id)
            assert result.returncode == 0, result.stdout + result.stderr
            (record,) = await in_thread(processed, kafka, names, 1)
            assert (record["id"], record["status"]) == (tombstone.id, "cancelled")
            await in_thread(wait_until, lambda: processor.state.cancelled == 1, 30, "the processor saw it end")
    finally:
        server.stop()


def test_status_of_an_unknown_id_says_so(kafka, names, uid, tmp_path):
    create_topics(kafka.bootstrap, names, partitions=1)
    result = admin(admin_env(kafka, names, {}), "status", f"{uid}-nothing")
    assert result.returncode == 1
    assert "not on" in result.stderr and f"{uid}-nothing" in result.stderr


@pytest.mark.parametrize("args", [["dlq", "list"], ["status", "x"], ["dlq", "replay", "--all"]])
def test_a_missing_broker_is_one_line_and_exit_2(args, tmp_path):
    result = admin({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}, *args, timeout=60)
    assert_one_error_line(result, "error: no Kafka broker answered")


def test_cancel_without_a_server_is_one_line_and_exit_2(kafka, names):
    unset = admin(admin_env(kafka, names, {}), "cancel", "x")
    assert unset.returncode == 2 and "set RESONATE_URL" in unset.stderr
    gone = admin(admin_env(kafka, names, {"resonate_url": f"http://127.0.0.1:{free_port()}"}), "cancel", "x", timeout=60)
    assert_one_error_line(gone, "error: resonate server at")


def assert_one_error_line(result: subprocess.CompletedProcess, start: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), result.stderr


def test_replay_needs_a_selection(kafka, names):
    result = admin(admin_env(kafka, names, {}), "dlq", "replay")
    assert result.returncode == 2 and "--all" in result.stderr
