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

SHORT = 100
LONG_BATCHES = 30
INTERVAL = 0.5  # DELETE_BATCH_INTERVAL_SECONDS: the long head takes ≈ LONG_BATCHES × INTERVAL
WARM_UP = 10
TIMEOUT = 120.0
TARGET_PROCESSOR, TARGET_BASELINE = 1.5, 10.0


@dataclass
class Delays:
    worker: str
    alone: list[float]
    behind_long: list[float]

    def factor(self, q: float) -> float:
        return percentile(self.behind_long, q) / percentile(self.alone, q)


def delays(stack: Stack, names: dict[str, str], prefix: str, head: list[Tombstone]) -> list[float]:
    shorts = [Tombstone(id=tid, batches=1) for tid in new_ids(SHORT, prefix)]
    sent = stack.produce(names, head + shorts)
    done = stack.completions(names, [t.id for t in shorts], TIMEOUT)
    return [done[t.id].completed_at.timestamp() - sent for t in shorts]


def measure(stack: Stack, worker: str) -> Delays:
    names = stack.topics(f"hol-{worker}", partitions=1)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=INTERVAL, PROCESSOR_MAX_IN_FLIGHT=2 * SHORT)
    with stack.processors(env, 1, "hol-p") if worker == "processor" else stack.baseline(env):
        warm = [Tombstone(id=tid, batches=1) for tid in new_ids(WARM_UP, f"{names['TOPIC_TOMBSTONES']}-warm")]
        stack.produce(names, warm)
        stack.completions(names, [t.id for t in warm], TIMEOUT)
        alone = delays(stack, names, f"{names['TOPIC_TOMBSTONES']}-alone", [])
        long = Tombstone(id=f"{names['TOPIC_TOMBSTONES']}-long", batches=LONG_BATCHES)
        behind = delays(stack, names, f"{names['TOPIC_TOMBSTONES']}-behind", [long])
    return Delays(worker, alone, behind)


def run(stack: Stack) -> Section:
    results = [measure(stack, "processor"), measure(stack, "baseline")]
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
        ax.set_title(f"{TITLE[:2]} Head-of-line: {SHORT} short jobs, alone vs behind a long one")

    return Section(
        title=TITLE,
        settings=(
            f"1 partition; {SHORT} short tombstones (1 batch) alone, then behind one long tombstone "
            f"({LONG_BATCHES} batches, DELETE_BATCH_INTERVAL_SECONDS={INTERVAL}); delay = completion − "
            f"production; HOL factor = delay behind the long one / delay alone. Baseline: "
            f"`bench/baseline.py`, one message at a time, same deletion, synchronous publish."
        ),
        header=["worker", "p50 alone (s)", "p50 behind long (s)", "HOL p50", "p99 alone (s)",
                "p99 behind long (s)", "HOL p99"],
        rows=rows,
        verdict=verdict,
        plot=plot,
    )
