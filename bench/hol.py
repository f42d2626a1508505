"""Scenario — head-of-line blocking.

One partition. First 100 short tombstones alone, then one long tombstone followed by the same
100 short ones; the same worker handles both phases. A short job's delay is its completion time
minus the moment the phase was produced. HOL factor = delay with the long head / delay alone,
at p50 and p99. The processor is compared with ``bench.baseline`` (one message at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes

from bench.report import Section, fmt
from bench.stack import Stack
from harness.stats import percentile
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "4. Head-of-line blocking"

@dataclass(frozen=True)
class Sizes:
    short: int = 100
    long_batches: int = 30
    interval: float = 0.5  # DELETE_BATCH_INTERVAL_SECONDS: the long head takes ≈ long_batches × interval
    warm_up: int = 10


FULL, SMOKE = Sizes(), Sizes(short=4, long_batches=3, interval=0.2, warm_up=1)
TIMEOUT = 120.0
TARGET_PROCESSOR, TARGET_BASELINE = 1.5, 10.0


@dataclass
class Delays:
    worker: str
    alone: list[float]
    behind_long: list[float]

    def factor(self, q: float) -> float:
        return percentile(self.behind_long, q) / percentile(self.alone, q)


def delays(stack: Stack, names: dict[str, str], prefix: str, head: list[Tombstone], short: int) -> list[float]:
    shorts = [Tombstone(id=tid, batches=1) for tid in new_ids(short, prefix)]
    sent = stack.produce(names, head + shorts)
    done = stack.completions(names, [t.id for t in shorts], TIMEOUT)
    return [done[t.id].completed_at.timestamp() - sent for t in shorts]


def measure(stack: Stack, worker: str, sizes: Sizes) -> Delays:
    names = stack.topics(f"hol-{worker}", partitions=1)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=sizes.interval, PROCESSOR_MAX_IN_FLIGHT=2 * sizes.short)
    with stack.processors(env, 1, "hol-p") if worker == "processor" else stack.baseline(env):
        warm = [Tombstone(id=tid, batches=1) for tid in new_ids(sizes.warm_up, f"{names['TOPIC_TOMBSTONES']}-warm")]
        stack.produce(names, warm)
        stack.completions(names, [t.id for t in warm], TIMEOUT)
        alone = delays(stack, names, f"{names['TOPIC_TOMBSTONES']}-alone", [], sizes.short)
        long = Tombstone(id=f"{names['TOPIC_TOMBSTONES']}-long", batches=sizes.long_batches)
        behind = delays(stack, names, f"{names['TOPIC_TOMBSTONES']}-behind", [long], sizes.short)
    return Delays(worker, alone, behind)


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    results = [measure(stack, "processor", sizes), measure(stack, "baseline", sizes)]
    rows = [
        [
            r.worker,
            fmt(percentile(r.alone, 50)), fmt(percentile(r.behind_long, 50)), f"**{r.factor(50):.2f}**",
            fmt(percentile(r.alone, 99)), fmt(percentile(r.behind_long, 99)), f"**{r.factor(99):.2f}**",
        ]
        for r in results
    ]
    proc, base = results
    worst_proc = max(proc.factor(50), proc.factor(99))
    least_base = min(base.factor(50), base.factor(99))
    verdict = (
        f"processor HOL factor ≤ {TARGET_PROCESSOR}: {'met' if worst_proc <= TARGET_PROCESSOR else 'MISSED'} "
        f"(worst {worst_proc:.2f}); baseline ≥ {TARGET_BASELINE}: "
        f"{'met' if least_base >= TARGET_BASELINE else 'MISSED'} (least {least_base:.1f})"
    )

    def plot(ax: Axes) -> None:
        labels = [f"{r.worker}\n{phase}" for r in results for phase in ("alone", "behind long")]
        ax.boxplot([d for r in results for d in (r.alone, r.behind_long)], showfliers=False)
        ax.set_xticks(range(1, 5), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("short job completion delay (s)")
        ax.set_title(f"{TITLE[:2]} Head-of-line: {sizes.short} short jobs, alone vs behind a long one")

    return Section(
        title=TITLE,
        settings=(
            f"1 partition; {sizes.short} short tombstones (1 batch) alone, then behind one long tombstone "
            f"({sizes.long_batches} batches, DELETE_BATCH_INTERVAL_SECONDS={sizes.interval}); delay = completion − "
            f"production; HOL factor = delay behind the long one / delay alone. Baseline: "
            f"`bench/baseline.py`, one message at a time, same deletion, synchronous publish."
        ),
        header=["worker", "p50 alone (s)", "p50 behind long (s)", "HOL p50", "p99 alone (s)",
                "p99 behind long (s)", "HOL p99"],
        rows=rows,
        verdict=verdict,
        plot=plot,
    )
