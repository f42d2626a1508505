"""Scenario 4 — processor memory with 0, 100 and 1,000 workflows in flight.

One processor, long tombstones (they never finish here), PROCESSOR_MAX_IN_FLIGHT above 1,000.
RSS is read from /proc/<pid>/status once every workflow of a step has been handed off and has
run its first batch.
"""

from __future__ import annotations

from devstack.procs import wait_until
from matplotlib.axes import Axes

from bench.report import Section
from bench.stack import Stack, gauge
from harness.ledger import read_ledger
from harness.procfs import rss_kib
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

STEPS = (0, 100, 1000)
INTERVAL = 30.0  # long durable sleeps: the workflows stay in flight without keeping the CPU busy
BATCHES = 10_000
MAX_IN_FLIGHT = 1200
TIMEOUT = 180.0


def run(stack: Stack) -> Section:
    names = stack.topics("memory", partitions=4)
    ledger = stack.ledger_path(names)
    env = stack.env(
        names, DELETE_BATCH_INTERVAL_SECONDS=INTERVAL, PROCESSOR_MAX_IN_FLIGHT=MAX_IN_FLIGHT, DELETE_LEDGER_PATH=ledger
    )
    ids = new_ids(max(STEPS), names["TOPIC_TOMBSTONES"])
    rss: list[int] = []
    with stack.processors(env, 1, "mem") as [processor]:
        pid = processor.pid
        assert pid is not None
        sent = 0
        for target in STEPS:
            stack.produce(names, [Tombstone(id=tid, batches=BATCHES) for tid in ids[sent:target]])
            sent = target
            in_flight = lambda n=target: gauge(processor, "tombstones_in_flight") == n  # noqa: E731
            started = lambda n=target: len({e["id"] for e in read_ledger(ledger)}) >= n  # noqa: E731
            wait_until(in_flight, TIMEOUT, f"{target} workflows in flight")
            wait_until(started, TIMEOUT, f"{target} workflows ran their first batch")
            rss.append(rss_kib(pid))
    base = rss[0]
    rows = [
        [str(n), f"{kib / 1024:.1f}", f"{(kib - base) / 1024:+.1f}", f"{(kib - base) / n:.1f}" if n else "", f"{kib / base:.2f}×"]
        for n, kib in zip(STEPS, rss)
    ]

    def plot(ax: Axes) -> None:
        ax.plot(STEPS, [kib / 1024 for kib in rss], marker="o")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("workflows in flight (one processor)")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title("4. Processor memory (VmRSS)")

    return Section(
        title="4. Memory",
        settings=(
            f"1 processor, PROCESSOR_MAX_IN_FLIGHT={MAX_IN_FLIGHT}, tombstones of {BATCHES} batches with "
            f"DELETE_BATCH_INTERVAL_SECONDS={INTERVAL} (in flight for the whole scenario); RSS from "
            f"/proc/<pid>/status once each workflow has run its first batch."
        ),
        header=["in flight", "RSS (MiB)", "vs 0 (MiB)", "KiB per workflow", "vs 0"],
        rows=rows,
        plot=plot,
    )
