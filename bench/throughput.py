"""Scenario — throughput, and the Resonate server's own ceiling measured in the same run.

Zero sleep, one batch per tombstone. For 1, 2 and 4 processors (separate processes, one consumer
group, 8 partitions): produce N tombstones at once and count tombstones/s from the first send to
the last completion. The ceiling: promise create + resolve pairs/s from one client
(resonate-sdk's ``promises`` client, a fixed number of concurrent requests) on an idle pipeline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from devstack.procs import wait_until
from matplotlib.axes import Axes
from resonate.resonate import Resonate
from resonate.types import Value

from bench.report import Section
from bench.stack import Stack, gauge
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "3. Throughput"

PARTITIONS = 8
TIMEOUT = 180.0
CEILING_CONCURRENCY = 16


@dataclass(frozen=True)
class Sizes:
    tombstones: int = 1500
    processors: tuple[int, ...] = (1, 2, 4)
    ceiling_pairs: int = 6000
    ceiling_seconds: float = 20.0


FULL, SMOKE = Sizes(), Sizes(tombstones=8, processors=(1, 2), ceiling_pairs=32, ceiling_seconds=5.0)


@dataclass
class Rate:
    processors: int
    tombstones: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.tombstones / self.seconds


def pipeline_rate(stack: Stack, count: int, tombstones: int) -> Rate:
    names = stack.topics(f"tput{count}", partitions=PARTITIONS)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=0)
    with stack.processors(env, count, f"tput{count}-") as processors:
        def balanced() -> bool:
            assigned = [gauge(p, "tombstones_partitions_assigned") for p in processors]
            return sum(assigned) == PARTITIONS and min(assigned) >= 1

        wait_until(balanced, 60, f"{PARTITIONS} partitions spread over {count} processors")
        work = [Tombstone(id=tid, batches=1) for tid in new_ids(tombstones, names["TOPIC_TOMBSTONES"])]
        sent = stack.produce(names, work)
        done = stack.completions(names, [t.id for t in work], TIMEOUT)
    last = max(record.completed_at.timestamp() for record in done.values())
    return Rate(count, tombstones, last - sent)


async def _ceiling(url: str, sizes: Sizes) -> Rate:
    client = Resonate(url=url, sources=[])  # send-only: no worker, no subscriptions
    prefix = f"bench-ceiling-{uuid.uuid4().hex[:6]}"
    numbers = iter(range(sizes.ceiling_pairs))
    completed = 0
    started = time.monotonic()
    deadline = started + sizes.ceiling_seconds

    async def worker() -> None:
        nonlocal completed
        for number in numbers:  # shared: each pair is taken by exactly one worker
            if time.monotonic() > deadline:
                return
            promise = f"{prefix}-{number}"
            await client.promises.create(promise, int(time.time() * 1000) + 3_600_000, Value(), {})
            await client.promises.resolve(promise, Value())
            completed += 1

    try:
        await asyncio.gather(*(worker() for _ in range(CEILING_CONCURRENCY)))
    finally:
        await client.stop()
    return Rate(0, completed, time.monotonic() - started)


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    ceiling = asyncio.run(_ceiling(stack.server.url, sizes)) if stack.server is not None else None
    rates = [pipeline_rate(stack, count, sizes.tombstones) for count in sizes.processors]
    one = rates[0].per_second
    rows = []
    for rate in rates:
        rows.append([
            f"{rate.processors} processor{'s' if rate.processors > 1 else ''}", f"{rate.tombstones} tombstones",
            f"{rate.seconds:.1f}", f"**{rate.per_second:.0f}** tombstones/s", f"{rate.per_second / one:.2f}×",
        ])
    if ceiling:  # another unit: promise pairs, not workflows (the floor scenario compares workflows)
        rows.append([
            "server: promise create+resolve pairs, 1 client", f"{ceiling.tombstones} pairs",
            f"{ceiling.seconds:.1f}", f"**{ceiling.per_second:.0f}** pairs/s", "–",
        ])

    def plot(ax: Axes) -> None:
        ax.bar([str(r.processors) for r in rates], [r.per_second for r in rates], color="tab:blue", label="pipeline")
        ax.set_xlabel("processors (one consumer group)")
        ax.set_ylabel("tombstones / s")
        ax.set_title(f"{TITLE[:2]} Throughput: {sizes.tombstones} one-batch tombstones, zero sleep")
        ax.legend()

    return Section(
        title=TITLE,
        settings=(
            f"{sizes.tombstones} tombstones of 1 batch, DELETE_BATCH_INTERVAL_SECONDS=0, {PARTITIONS} partitions, "
            f"PROCESSOR_MAX_IN_FLIGHT=100 (default) per processor; time = first send → last completion. "
            f"Ceiling: {CEILING_CONCURRENCY} concurrent create+resolve loops through resonate-sdk's "
            f"`promises` client in one process, at most {sizes.ceiling_pairs} pairs or {sizes.ceiling_seconds:.0f} s."
        ),
        header=["run", "work", "seconds", "per second", "vs 1 processor"],
        rows=rows,
        plot=plot,
    )
