"""The processor never wedges silently: an incompatible server, refusals, outages and shutdowns
against a real broker and a real Resonate server (behind a fault-injecting proxy where the
server must misbehave)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from devstack.procs import wait_until
from harness.kafka import read_until
from harness.ledger import Kill, read_ledger
from tests.support.faults import judge
from harness.topics import create_topics, send_tombstones
from devstack.procs import http_get
from harness.processes import BIN, ProcessorProcess, clean_environ, metric
from tests.support.pipeline import committed
from tests.support.processes import durable_env, terminating, the_error_line
from tests.support.server_proxy import OLD_SERVER_REFUSAL, Fault, ServerProxy
from tombstone_common.messages import DeadLetterHeader, Tombstone
from tombstone_processor.server_check import REQUIRED_SERVER
from tombstone_producer.produce import new_ids

pytestmark = pytest.mark.durable


@pytest.fixture
def own_stack(private_stack, names):
    """A broker and a Resonate server of this test's own, with its topics (one partition): what
    the test does to the server (refused probes, injected faults) stays out of the other tests."""
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=1)
    return broker.bootstrap_servers, server


def test_an_incompatible_server_stops_the_processor_with_one_line_before_it_consumes(
    own_stack, names, uid, tmp_path
):
    bootstrap, server = own_stack
    send_tombstones(bootstrap, names, [Tombstone(id=f"old{uid}-1", batches=1)])
    with ServerProxy(server.url, refuse_step_creates=True) as proxy:
        env = {
            **clean_environ(),
            **names,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RESONATE_URL": proxy.url,
            "PROCESSOR_HTTP_PORT": "0",
            "LOG_FORMAT": "json",
        }
        result = subprocess.run(
            [str(BIN / "record-processor")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 2, result.stderr[-2000:]
    line = the_error_line(result.stderr)
    print(line)
    assert proxy.url in line and OLD_SERVER_REFUSAL in line and REQUIRED_SERVER in line
    assert "step promise" in line
    assert proxy.seen[("task.fence", "refused step")] >= 1
    assert committed(bootstrap, names) == {0: -1001}, "nothing consumed, nothing committed"


def test_transient_server_errors_are_retried_and_a_refused_hand_off_is_dead_lettered(
    own_stack, names, uid, tmp_path
):
    bootstrap, server = own_stack
    refused = f"refused{uid}"
    faults = [  # on the tombstones' workflows only (not the start-up check)
        Fault("task.create", status=503, times=4, id_contains=uid),
        Fault("task.create", delay=1.0, times=2, id_contains=uid),
        Fault("task.create", reset=True, times=2, id_contains=uid),
        Fault("task.create", status=429, times=2, id_contains=uid),
        Fault("task.create", status=400, message="refused by the test", id_contains=refused),
    ]
    with ServerProxy(server.url, faults=faults) as proxy:
        env = durable_env(
            SimpleNamespace(bootstrap_servers=bootstrap), proxy, names, tmp_path, PROCESSOR_HANDOFF_ATTEMPTS="2"
        )
        processor = ProcessorProcess("t", env, tmp_path)
        processor.start()
        with terminating(processor):
            good = [Tombstone(id=tid, batches=1) for tid in new_ids(6, f"ok{uid}")]
            send_tombstones(bootstrap, names, [good[0], Tombstone(id=refused, batches=1), *good[1:]])
            records = read_until(bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= len(good), timeout=120)
            (dead,) = read_until(bootstrap, names["TOPIC_DLQ"], lambda r: len(r) >= 1, timeout=60)
            wait_until(lambda: metric(processor.metrics(), "tombstones_dead_lettered_total") == 1, 30, "counted")
            body = processor.metrics()
            wait_until(lambda: committed(bootstrap, names)[0] == 7, 30, "every offset settled, the refused one too")
    assert {r.key for r in records} == {t.id for t in good}
    assert dead.key == refused
    assert b"refused by the test" in dead.headers[DeadLetterHeader.REASON]
    assert dead.headers[DeadLetterHeader.ATTEMPTS] == b"2"
    assert metric(body, "tombstones_failed_total") == 1
    assert metric(body, "tombstones_started_total") == len(good), "started counts workflows, not retries"
    assert metric(body, "tombstones_handoff_retries_total") >= 6, "the 503s and 429s (resets are retried by the SDK)"
    assert proxy.seen[("task.create", 503)] == 4 and proxy.seen[("task.create", "reset")] == 2


def test_a_server_gone_without_closing_its_stream_is_reconnected_and_sleeping_workflows_wake(
    own_stack, names, uid, tmp_path
):
    """As when the server's node is lost: the event stream stays open and silent. The workflows
    asleep between their batches are woken by notifications on that stream; the processor must
    notice the silence (RESONATE_STREAM_IDLE_SECONDS) and connect again, not wait for the
    listener refresh (RESONATE_LISTENER_REFRESH_SECONDS, 600 s) or forever."""
    bootstrap, server = own_stack
    with ServerProxy(server.url) as proxy:
        env = durable_env(SimpleNamespace(bootstrap_servers=bootstrap), proxy, names, tmp_path,
                          RESONATE_STREAM_IDLE_SECONDS="2", DELETE_BATCH_INTERVAL_SECONDS="3", DELETE_DONE_RATE="0")
        processor = ProcessorProcess("v", env, tmp_path)
        processor.start()
        with terminating(processor):
            wait_until(lambda: proxy.streams >= 1, 30, "the processor's event stream open")
            tombstones = [Tombstone(id=tid, batches=3) for tid in new_ids(6, f"gone{uid}")]
            send_tombstones(bootstrap, names, tombstones)
            # every workflow ran its first batch and sleeps: a notification must wake it
            wait_until(lambda: len({e["id"] for e in read_ledger(tmp_path / "ledger.jsonl")}) == len(tombstones),
                       60, "every workflow's first batch done")
            vanished = proxy.vanish_streams()
            began = time.monotonic()
            records = read_until(bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= len(tombstones), timeout=120)
            took = time.monotonic() - began
    print(f"{vanished} stream(s) vanished; {proxy.streams} opened in all; every workflow done {took:.1f}s later")
    assert {r.key for r in records} == {t.id for t in tombstones}
    assert proxy.seen[("stream", "vanished")] >= 1 and proxy.streams > vanished, "connected again"


def test_sigterm_while_the_server_is_down_exits_at_once_and_nothing_is_lost(private_stack, names, uid, tmp_path):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=2)
    env = durable_env(broker, server, names, tmp_path)
    processor = ProcessorProcess("s", env, tmp_path)
    processor.start()
    server.stop()
    tombstones = [Tombstone(id=tid, batches=1) for tid in new_ids(5, f"down{uid}")]
    send_tombstones(broker.bootstrap_servers, names, tombstones)
    wait_until(lambda: metric(processor.metrics(), "tombstones_records_pending") == 5, 60, "five hand-offs waiting")
    began = time.monotonic()
    assert processor.terminate(timeout=30) == 0
    print(f"SIGTERM → exit with the server down: {time.monotonic() - began:.2f}s")
    assert all(offset <= 0 for offset in committed(broker.bootstrap_servers, names).values()), (
        "nothing was handed off, nothing committed past it"
    )

    server.start()
    again = ProcessorProcess("s2", env, tmp_path)
    again.start()
    with terminating(again):
        records = read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 5, timeout=120)
    assert sorted(r.key for r in records) == sorted(t.id for t in tombstones)


def test_the_processor_stays_in_its_group_through_a_server_outage_longer_than_max_poll_interval(
    private_stack, names, uid, tmp_path
):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=2)
    max_poll_ms = 7000
    env = durable_env(broker, server, names, tmp_path, KAFKA_MAX_POLL_INTERVAL_MS=str(max_poll_ms))
    processor = ProcessorProcess("g", env, tmp_path)
    processor.start()
    with terminating(processor):
        server.stop()
        down_at = time.monotonic()
        tombstones = [Tombstone(id=tid, batches=1) for tid in new_ids(4, f"outage{uid}")]
        send_tombstones(broker.bootstrap_servers, names, tombstones)
        wait_until(lambda: metric(processor.metrics(), "tombstones_records_pending") == 4, 60, "hand-offs waiting")
        # The outage itself is what is tested: it must outlast max.poll.interval.ms twice over.
        wait_until(lambda: time.monotonic() - down_at > 2 * max_poll_ms / 1000, 60, "outage > 2 × max.poll.interval.ms")
        status, body = http_get(processor.url + "/readyz")
        assert status == 503 and b"resonate" in body
        assert b"consumer" not in body, "still in the group"
        assert metric(processor.metrics(), "tombstones_partitions_assigned") == 2
        assert b"partitions lost" not in processor.process.log_file.read_bytes()
        server.start()
        records = read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 4, timeout=120)
        assert sorted(r.key for r in records) == sorted(t.id for t in tombstones)
        assert processor.process.running()


def test_a_workflow_whose_steps_the_server_refuses_is_dead_lettered_instead_of_spinning(
    own_stack, names, uid, tmp_path
):
    bootstrap, server = own_stack
    refused = f"steprefused{uid}"
    faults = [Fault("task.fence", status=400, message="refused by the test", id_contains=f"{refused}:")]
    with ServerProxy(server.url, faults=faults) as proxy:
        env = durable_env(SimpleNamespace(bootstrap_servers=bootstrap), proxy, names, tmp_path)
        processor = ProcessorProcess("f", env, tmp_path)
        processor.start()
        with terminating(processor):
            good = [Tombstone(id=tid, batches=1) for tid in new_ids(3, f"fine{uid}")]
            send_tombstones(bootstrap, names, [Tombstone(id=refused, batches=1), *good])
            (dead,) = read_until(bootstrap, names["TOPIC_DLQ"], lambda r: len(r) >= 1, timeout=60)
            records = read_until(bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= len(good), timeout=60)
            wait_until(lambda: metric(processor.metrics(), "tombstones_dead_lettered_total") == 1, 30, "counted")
            body = processor.metrics()
            refusals = proxy.seen[("task.fence", 400)]
    assert dead.key == refused and b"refused by the test" in dead.headers[DeadLetterHeader.REASON]
    assert {r.key for r in records} == {t.id for t in good}
    assert metric(body, "tombstones_failed_total") == 1
    assert refusals == 3, "PROCESSOR_HANDOFF_ATTEMPTS refusals, then it stopped asking"


def test_a_processor_started_while_the_server_is_away_waits_for_it_and_says_so(private_stack, names, uid, tmp_path):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=1)
    server.stop()
    processor = ProcessorProcess("w", durable_env(broker, server, names, tmp_path), tmp_path)
    processor.process.spawn(
        processor.command,
        env={**clean_environ(), **processor.env, "PROCESSOR_HTTP_PORT": str(processor.port), "LOG_FORMAT": "json"},
        cwd=processor.process.run_dir,
        inherit_env=False,
    )
    with terminating(processor):
        wait_until(lambda: b"checking the Resonate server" in http_get(processor.url + "/readyz")[1], 60, "/readyz says why")
        server.start()
        wait_until(lambda: http_get(processor.url + "/readyz")[0] == 200, 90, "ready once the server answered the check")
        send_tombstones(broker.bootstrap_servers, names, [Tombstone(id=f"late{uid}", batches=1)])
        read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= 1, timeout=60)


def test_sigterm_during_a_server_outage_with_workflows_running_ends_within_the_grace_without_errors(
    private_stack, names, uid, tmp_path
):
    broker, server = private_stack
    create_topics(broker.bootstrap_servers, names, partitions=2)
    grace = 4.0
    env = durable_env(
        broker, server, names, tmp_path,
        DELETE_BATCH_INTERVAL_SECONDS="0.2", PROCESSOR_SHUTDOWN_GRACE_SECONDS=str(grace),
        DELETE_MAX_ATTEMPTS="1000", DELETE_RETRY_INITIAL_SECONDS="0.3", DELETE_RETRY_MAX_SECONDS="0.3",
    )
    # Deletes that fail most attempts (retried in the process every 0.3 s) and a short sleep after
    # each batch: when the server goes, most workflows are in the middle of a step, which then
    # cannot record its result, and the others sleep.
    tombstones = [Tombstone(id=tid, batches=6, error_rate=0.7) for tid in new_ids(20, f"busy{uid}")]
    ledger = lambda: read_ledger(tmp_path / "ledger.jsonl")  # noqa: E731

    def batches_done() -> Counter[str]:
        return Counter(e["id"] for e in ledger() if e["ok"])

    processor = ProcessorProcess("o", env, tmp_path)
    processor.start()
    send_tombstones(broker.bootstrap_servers, names, tombstones)
    wait_until(lambda: len(done := batches_done()) == len(tombstones) and min(done.values()) >= 1, 120, "all under way")
    server.stop()
    wait_until(lambda: b"resonate unreachable" in http_get(processor.url + "/readyz")[1], 30, "/readyz says the server is away")
    # The outage itself is what is tested: it outlasts two leases, so every lease this processor
    # held has lapsed on the server and every running step is stuck recording its result.
    outage_began = time.monotonic()
    wait_until(lambda: time.monotonic() - outage_began > 2 * float(env["RESONATE_TTL_SECONDS"]), 30, "outage > 2 leases")
    began = time.monotonic()
    stopped = Kill(time.time(), processor.pid, "SIGTERM")
    status = processor.terminate(timeout=grace + 10)
    took = time.monotonic() - began
    print(f"SIGTERM → exit during a server outage with {len(tombstones)} workflows under way: {took:.2f}s (grace {grace:g}s)")
    assert status == 0
    assert took < grace + 3, "the whole shutdown fits the grace period (plus the interpreter's exit)"
    lines = [json.loads(line) for line in processor.process.log_file.read_text().splitlines() if line.startswith("{")]
    signalled = next(i for i, line in enumerate(lines) if line.get("event") == "signal received, draining")
    errors = [line for line in lines[signalled:] if line.get("level") in ("error", "critical")]
    assert errors == [], f"a clean shutdown logs no error: {errors[:3]}"

    server.start()
    again = ProcessorProcess("o2", env, tmp_path)
    again.start()
    with terminating(again):
        records = read_until(broker.bootstrap_servers, names["TOPIC_PROCESSED"], lambda r: len(r) >= len(tombstones), timeout=180)
    verdict = judge([t.id for t in tombstones], [(r.key, r.value) for r in records], ledger(), [stopped])
    print("\n".join(verdict.lines([stopped])))
    assert verdict.lost == []
