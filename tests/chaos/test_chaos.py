"""Chaos: three processors, SIGKILLs, a rolling SIGTERM restart, a Resonate server restart and a
broker restart while 500 tombstones flow. Then the invariants: nothing lost, duplicates counted,
no finished batch executed again, at most one re-execution of a step in flight at a kill.

Run it with `make chaos` (CHAOS_RUNS=3 for three runs in a row); CHAOS_SEED replays a schedule.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from harness.kafka import read_all, read_until
from harness.ledger import Kill, read_ledger
from harness.processes import ProcessorProcess
from harness.stats import percentile
from harness.topics import create_topics, send_tombstones
from tests.support.faults import judge
from tests.support.processes import durable_env
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

pytestmark = [pytest.mark.chaos, pytest.mark.durable]

TOMBSTONES = 500
PROCESSORS = 3
LEASE_SECONDS = 5
BATCH_INTERVAL = 1.0
RETRY_MAX = 1.0


def test_nothing_is_lost_or_redone_under_kills_and_restarts(private_stack, names, uid, tmp_path, capsys):
    broker, server = private_stack
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    create_topics(broker.bootstrap_servers, names, partitions=6)
    ledger_path = tmp_path / "ledger.jsonl"
    env = durable_env(
        broker, server, names, tmp_path,
        RESONATE_TTL_SECONDS=str(LEASE_SECONDS),
        PROCESSOR_MAX_IN_FLIGHT="60",
        DELETE_BATCH_INTERVAL_SECONDS=str(BATCH_INTERVAL),
        DELETE_ERROR_RATE="0.1",
        DELETE_MAX_ATTEMPTS="50",
        DELETE_RETRY_INITIAL_SECONDS="0.1",
        DELETE_RETRY_MAX_SECONDS=str(RETRY_MAX),
        SIMULATION_SEED=str(seed),
    )
    processors = [ProcessorProcess(f"p{n}", env, tmp_path) for n in range(1, PROCESSORS + 1)]
    for processor in processors:
        processor.start()

    ids = new_ids(TOMBSTONES, f"chaos{uid}")
    work = [Tombstone(id=tid, batches=rng.randint(1, 8)) for tid in ids]
    production = threading.Thread(
        target=send_tombstones, args=(broker.bootstrap_servers, names, work, 12.0), daemon=True
    )
    production.start()

    kills: list[Kill] = []
    events: list[str] = []

    def pause() -> None:  # fault schedule, not synchronisation: when the next fault hits
        time.sleep(rng.uniform(1.5, 4.0))

    def sigkill(processor: ProcessorProcess) -> None:
        pid = processor.pid
        processor.kill()
        kills.append(Kill(time.time(), pid, "SIGKILL"))
        events.append(f"SIGKILL {processor.name} (pid {pid})")

    try:
        for _ in range(3):
            pause()
            victim = rng.choice(processors)
            sigkill(victim)
            pause()
            victim.start()
        pause()
        for processor in processors:  # rolling restart, as a Deployment update does it
            pid = processor.pid
            started = time.monotonic()
            status = processor.terminate(timeout=30)
            kills.append(Kill(time.time(), pid, "SIGTERM"))
            events.append(f"SIGTERM {processor.name} (pid {pid}): exit {status} in {time.monotonic() - started:.1f}s")
            assert status == 0, processor.process.tail(40)
            processor.start()
        pause()
        server.stop()
        events.append("Resonate server stopped")
        server.start()
        events.append("Resonate server restarted")
        pause()
        broker.stop()
        events.append("broker stopped")
        broker.start()
        events.append("broker restarted")
        pause()
        sigkill(rng.choice(processors))
        production.join(timeout=120)
        assert not production.is_alive(), "producer did not finish"
        read_until(
            broker.bootstrap_servers, names["TOPIC_PROCESSED"],
            lambda records: len({r.key for r in records}) >= TOMBSTONES, timeout=300,
        )
    finally:
        for processor in processors:
            if processor.pid is not None:
                processor.terminate(timeout=30)

    processed = read_all(broker.bootstrap_servers, names["TOPIC_PROCESSED"])
    ledger = read_ledger(ledger_path)
    verdict = judge(ids, [(r.key, r.value) for r in processed], ledger, kills)
    with capsys.disabled():
        print(f"\nchaos run (CHAOS_SEED={seed}):")
        for event in events:
            print(f"  {event}")
        for line in verdict.lines(kills):
            print(line)

    assert verdict.lost == []
    assert verdict.unexplained_redos == [], "a finished batch ran again, or a step ran more than twice"
    # A duplicate completion record needs a processor to die between publishing and recording
    # the publish: at most one per workflow in flight at a kill, never two for one id.
    assert all(
        sum(1 for r in processed if r.key == tid) == 2 for tid in verdict.duplicated_ids
    )
    sigkill_delays = [d for i, k in enumerate(kills) if k.how == "SIGKILL" for d in verdict.recoveries[i]]
    assert sigkill_delays, "some workflows were in flight at the kills"
    bound = LEASE_SECONDS + BATCH_INTERVAL + RETRY_MAX + 3
    assert percentile(sigkill_delays, 99) <= bound, f"p99 resume delay over the lease bound {bound}s"
