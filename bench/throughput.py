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
    store: str = "local mode"

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
    return Rate(count, tombstones, last - sent, _store(stack))


def _store(stack: Stack) -> str:
    return stack.server.storage if stack.server is not None else "local mode"


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


def on_one_store(stack: Stack, sizes: Sizes) -> tuple[list[Rate], Rate | None]:
    """The pipeline's rates for each processor count, and the server's ceiling, on ``stack``'s store."""
    ceiling = None
    if stack.server is not None:
        ceiling = asyncio.run(_ceiling(stack.server.url, sizes))
        ceiling.store = _store(stack)
    return [pipeline_rate(stack, count, sizes.tombstones) for count in sizes.processors], ceiling


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    stores = [on_one_store(stack, sizes)]
    with stack.on_other_store() as other:
        if other is not None:
            stores.append(on_one_store(other, sizes))
    rows = []
    for rates, ceiling in stores:
        one = rates[0].per_second
        for rate in rates:
            rows.append([
                f"{rate.processors} processor{'s' if rate.processors > 1 else ''}", rate.store,
                f"{rate.tombstones} tombstones", f"{rate.seconds:.1f}", f"**{rate.per_second:.0f}** tombstones/s",
                f"{rate.per_second / one:.2f}×",
            ])
        if ceiling:  # another unit: promise pairs, not workflows (the floor scenario compares workflows)
            rows.append([
                "server: promise create+resolve pairs, 1 client", ceiling.store, f"{ceiling.tombstones} pairs",
                f"{ceiling.seconds:.1f}", f"**{ceiling.per_second:.0f}** pairs/s", "–",
            ])
    rates = [rate for store_rates, _ in stores for rate in store_rates]

    def plot(ax: Axes) -> None:
        for number, (store_rates, _) in enumerate(stores):
            width = 0.8 / len(stores)
            ax.bar([i + number * width for i in range(len(store_rates))], [r.per_second for r in store_rates],
                   width=width, label=f"server on {store_rates[0].store}")
        ax.set_xticks([i + 0.4 - 0.4 / len(stores) for i in range(len(stores[0][0]))],
                      [str(r.processors) for r in stores[0][0]])
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
            f"`promises` client in one process, at most {sizes.ceiling_pairs} pairs or {sizes.ceiling_seconds:.0f} s. "
            f"The same again with a second Resonate server on the other store (PostgreSQL, a local Debian "
            f"server of its own, beside SQLite) when PostgreSQL is installed; the broker and the machine are shared."
        ),
        header=["run", "server store", "work", "seconds", "per second", "vs 1 processor"],
        rows=rows,
        plot=plot,
    )
