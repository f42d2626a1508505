"""Scenario — processor memory with 0, 100, 1,000 and 10,000 workflows in flight, and what they
cost while they sleep.

One processor, long tombstones (they never finish here) asleep between batches,
PROCESSOR_MAX_IN_FLIGHT above 10,000, the default lease.
RSS is read from /proc/<pid>/status once every workflow of a step has been handed off and has
run its first batch. Then, while every workflow sleeps, the processor's and the server's CPU and
the server's requests by kind (per sleeping workflow per minute) over one listener-refresh period.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devstack.procs import StackError, wait_until
from matplotlib.axes import Axes

from bench.report import Section
from bench.stack import Stack, gauge, server_requests
from harness.ledger import read_ledger
from harness.procfs import cpu_seconds, rss_kib
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "6. Memory"

INTERVAL = 1800.0  # one durable sleep after the first batch outlasts the scenario: in flight, idle
BATCHES = 10_000
MAX_IN_FLIGHT = 10_500
TIMEOUT = 600.0
STARTED_TIMEOUT = 240.0
TARGET_MIB = 300  # at 10,000 in flight
TARGET_CPU = 0.03  # processor and server each, at 10,000 asleep


@dataclass(frozen=True)
class Sizes:
    steps: tuple[int, ...] = (0, 100, 1000, 10_000)  # workflows in flight, one reading each
    # CPU and requests are sampled over windows this long once a step's workflows are all asleep
    # (shorter than a refresh of 10,000, which takes about a minute: quiet windows fit between)
    idle_seconds: float = 20.0
    # RESONATE_LISTENER_REFRESH_SECONDS here: short enough that one refresh (one request per
    # sleeping workflow) falls in a window of the last step, which reports its cost apart
    refresh_seconds: float = 120.0


FULL, SMOKE = Sizes(), Sizes(steps=(0, 3), idle_seconds=1.0, refresh_seconds=2.0)
DEFAULT_REFRESH_SECONDS = 600.0  # RESONATE_LISTENER_REFRESH_SECONDS's default
REFRESH = "promise.register_listener"


@dataclass
class Window:
    """CPU share of one core (processor, server) and the server's requests over one window."""

    cpu: tuple[float, float]
    cpu_seconds: tuple[float, float]
    requests: dict[str, int]

    @property
    def refreshes(self) -> int:
        """Listener-refresh requests in it (none: a quiet window)."""
        return self.requests.get(REFRESH, 0)


def window(stack: Stack, pids: list[int], seconds: float) -> Window:
    before = [cpu_seconds(p) for p in pids]
    requests_before = server_requests(stack) if stack.durable else Counter()
    time.sleep(seconds)  # a measuring window, not a synchronisation
    used = [cpu_seconds(p) - b for p, b in zip(pids, before)] + [0.0]
    requests = dict(server_requests(stack) - requests_before) if stack.durable else {}
    return Window((used[0] / seconds, used[1] / seconds), (used[0], used[1]), requests)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    steps, idle_seconds = sizes.steps, sizes.idle_seconds
    names = stack.topics("memory", partitions=4)
    ledger = stack.ledger_path(names)
    env = stack.env(
        names, DELETE_BATCH_INTERVAL_SECONDS=INTERVAL, PROCESSOR_MAX_IN_FLIGHT=MAX_IN_FLIGHT, DELETE_LEDGER_PATH=ledger,
        RESONATE_LISTENER_REFRESH_SECONDS=sizes.refresh_seconds,
    )
    # a quiet window, and a whole refresh, come within one refresh period and one refresh
    windows_at_most = 3 + math.ceil(2 * sizes.refresh_seconds / idle_seconds)
    refresh: tuple[Window, list[Window]] | None = None  # (quiet, the windows of one refresh) at the last step
    ids = new_ids(max(steps), names["TOPIC_TOMBSTONES"])
    rss: list[int] = []
    server_rss: list[int] = []
    idle_cpu: list[tuple[float, float]] = []  # (processor, server) CPU share while all sleep
    idle_requests: list[dict[str, int]] = []  # server requests by kind while all sleep
    ran: list[int] = []  # workflows that had run their first batch when RSS was read
    server = stack.server.process.pid() if stack.server is not None else None
    with stack.processors(env, 1, "mem") as [processor]:
        pid = processor.pid
        assert pid is not None
        watched = [pid] if server is None else [pid, server]
        sent = 0
        for target in steps:
            stack.produce(names, [Tombstone(id=tid, batches=BATCHES) for tid in ids[sent:target]])
            sent = target
            in_flight = lambda n=target: gauge(processor, "tombstones_in_flight") == n  # noqa: E731
            # one ledger line per first batch (no errors, long sleeps): cheap to count while waiting
            started = lambda n=target: _lines(ledger) >= n  # noqa: E731
            wait_until(in_flight, TIMEOUT, f"{target} workflows in flight")
            with contextlib.suppress(StackError):  # measured anyway; the row says how many ran
                wait_until(started, STARTED_TIMEOUT, f"{target} workflows ran their first batch")
            rss.append(rss_kib(pid))
            ran.append(len({e["id"] for e in read_ledger(ledger)}))
            server_rss.append(rss_kib(server) if server is not None else 0)
            # Windows until one without the refresh (the quiet cost) and, at the last step, one with
            # it (its cost, reported apart); a refresh comes every refresh_seconds at most.
            # A refresh of 10,000 runs for about a minute: its windows are added up until they hold
            # one refresh's worth of requests (the tail of one and the head of the next will do).
            last = target == steps[-1] and stack.durable
            quiet, refreshing = None, []
            for _ in range(windows_at_most):
                seen = window(stack, watched, idle_seconds)
                if seen.refreshes:
                    refreshing.append(seen)
                else:
                    quiet = quiet or seen
                whole = sum(w.refreshes for w in refreshing) >= target
                if quiet is not None and (whole or not last):
                    break
            quiet = quiet or seen  # (only a run with a refresh in every window lacks one)
            idle_cpu.append(quiet.cpu)
            if stack.durable:
                idle_requests.append(quiet.requests)
            if last and refreshing:
                refresh = (quiet, refreshing)
    base = rss[0]
    rows = [
        [
            str(n), f"**{kib / 1024:.1f}**", f"{(kib - base) / 1024:+.1f}", f"{(kib - base) / n:.1f}" if n else "–",
            f"{kib / base:.2f}×", str(started), f"{srv / 1024:.1f}", f"{cpu[0]:.0%}", f"{cpu[1]:.0%}",
        ]
        for n, kib, started, srv, cpu in zip(steps, rss, ran, server_rss, idle_cpu)
    ]
    at_most = rss[-1] / 1024
    asleep_cpu = idle_cpu[-1]
    refresh_note = "no listener refresh was seen in the windows of the last step (so its cost is not in the figures). "
    if refresh is not None:
        quiet, refreshing = refresh
        seen = sum(w.refreshes for w in refreshing)
        scale = steps[-1] / seen if seen else 1.0  # what was seen, scaled to one refresh of all
        spent = idle_seconds * len(refreshing)
        extra = [scale * max(0.0, sum(w.cpu_seconds[i] for w in refreshing) - quiet.cpu[i] * spent) for i in (0, 1)]
        asleep_cpu = tuple(q + e / DEFAULT_REFRESH_SECONDS for q, e in zip(quiet.cpu, extra))
        refresh_note = (
            f"One listener refresh ({steps[-1]:,} `{REFRESH}` requests; {len(refreshing)} windows held {seen:,} "
            f"refresh requests, their cost above the quiet window's scaled to {steps[-1]:,}) cost the processor "
            f"{extra[0]:.2f} s and the server {extra[1]:.2f} s of CPU; at the default period "
            f"(RESONATE_LISTENER_REFRESH_SECONDS={DEFAULT_REFRESH_SECONDS:.0f}) that adds "
            f"{extra[0] / DEFAULT_REFRESH_SECONDS:.2%} and {extra[1] / DEFAULT_REFRESH_SECONDS:.2%} of a core, "
            f"included below. "
        )
    verdict = (
        f"RSS at {steps[-1]:,} in flight ≤ {TARGET_MIB} MiB: {'met' if at_most <= TARGET_MIB else 'MISSED'} "
        f"({at_most:.0f} MiB, {(rss[-1] - base) / steps[-1]:.1f} KiB per workflow above idle). "
        f"{refresh_note}"
        f"CPU at {steps[-1]:,} asleep, with the refresh, ≤ {TARGET_CPU:.0%} of a core each: "
        f"{'met' if max(asleep_cpu) <= TARGET_CPU else 'MISSED'} "
        f"(processor {asleep_cpu[0]:.1%}, server {asleep_cpu[1]:.1%})."
    )
    if idle_requests and not any(idle_requests):
        verdict += "\n\nThe server received no request while every workflow slept (the quiet windows)."
    elif idle_requests:
        kinds = sorted(set().union(*idle_requests))
        per_minute = 60 / idle_seconds
        verdict += "\n\nServer requests per sleeping workflow per minute, by kind (while every workflow sleeps):\n\n"
        verdict += "| in flight | " + " | ".join(f"`{k}`" for k in kinds) + " | all |\n"
        verdict += "|---" * (len(kinds) + 2) + "|\n"
        for n, counts in zip(steps, idle_requests):
            if not n:
                continue
            cells = [f"{counts.get(k, 0) * per_minute / n:.3f}" for k in kinds]
            verdict += f"| {n:,} | " + " | ".join(cells) + f" | {sum(counts.values()) * per_minute / n:.3f} |\n"

    def plot(ax: Axes) -> None:
        ax.plot(steps, [kib / 1024 for kib in rss], marker="o")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("workflows in flight (one processor)")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{TITLE[:2]} Processor memory (VmRSS)")

    return Section(
        title=TITLE,
        settings=(
            f"1 processor, PROCESSOR_MAX_IN_FLIGHT={MAX_IN_FLIGHT}, tombstones of {BATCHES} batches with "
            f"DELETE_BATCH_INTERVAL_SECONDS={INTERVAL} (in flight for the whole scenario), "
            f"the default lease (RESONATE_TTL_SECONDS=15); RSS from "
            f"/proc/<pid>/status once each workflow has run its first batch (or after {STARTED_TIMEOUT:.0f} s; the row says how many had); then CPU (share of one core) of the "
            f"processor and the server over a {idle_seconds:.0f} s window without a listener refresh request while every workflow "
            f"sleeps (RESONATE_LISTENER_REFRESH_SECONDS={sizes.refresh_seconds:.0f} here, so that the last step also sees "
            f"one refresh, whose cost is reported apart and added at the default period)."
        ),
        header=["in flight", "processor RSS (MiB)", "vs 0 (MiB)", "KiB per workflow", "vs 0", "ran 1st batch",
                "server RSS (MiB)", "processor CPU while asleep", "server CPU while asleep"],
        rows=rows,
        verdict=verdict,
        plot=plot,
    )
