"""Scenario — recovery latency after a SIGKILL.

Processor A takes K long tombstones (all handed off, each has run a batch); processor B joins
the same groups; A is SIGKILLed. From the delete ledger: for every workflow whose last step
before the kill ran in A, the time from the kill to its next step in B. Needs a Resonate server
(local mode is not durable: there is nothing to recover).

With no sleep between batches every workflow holds its task lease at the kill, so it waits for
the lease (RESONATE_TTL_SECONDS) to expire: the worst case. A workflow in a durable sleep holds
no lease; the extra row shows those resume when their sleep ends, on whichever processor is alive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from devstack.procs import wait_until
from matplotlib.axes import Axes

from bench.report import Section, fmt, plot_cdf
from bench.stack import REJECTED, TIMER_POLL_MS, Stack, gauge, server_requests
from harness.ledger import Kill, read_ledger, resume_delays
from harness.stats import percentile
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "5. Recovery after SIGKILL"

TTL_SECONDS = 5  # RESONATE_TTL_SECONDS: the task lease a dead processor's workflows wait out
SESSION_TIMEOUT_MS = 6000
BATCHES = 10_000  # never finish during the scenario
RESUME_TIMEOUT = 90.0


@dataclass(frozen=True)
class Sizes:
    cases: tuple[tuple[int, float], ...] = ((10, 0.0), (100, 0.0), (100, 1.0))  # (K in flight, sleep between batches)


FULL, SMOKE = Sizes(), Sizes(cases=((2, 0.0), (2, 0.5)))


@dataclass
class Recovery:
    count: int
    interval: float
    in_flight: int  # workflows whose last step before the kill ran in the victim
    delays: list[float]  # kill → next step in the survivor, one per resumed workflow


def recover(stack: Stack, count: int, interval: float) -> Recovery:
    names = stack.topics(f"recovery{count}", partitions=4)
    ledger = stack.ledger_path(names)
    env = stack.env(
        names,
        RESONATE_TTL_SECONDS=TTL_SECONDS,
        KAFKA_SESSION_TIMEOUT_MS=SESSION_TIMEOUT_MS,
        DELETE_BATCH_INTERVAL_SECONDS=interval,
        PROCESSOR_MAX_IN_FLIGHT=2 * count,
        DELETE_LEDGER_PATH=ledger,
    )
    ids = new_ids(count, names["TOPIC_TOMBSTONES"])
    with stack.processors(env, 1, f"rec{count}-a") as [victim]:
        stack.produce(names, [Tombstone(id=tid, batches=BATCHES) for tid in ids])
        wait_until(lambda: gauge(victim, "tombstones_in_flight") == count, 60, f"{count} workflows in flight")
        wait_until(lambda: {e["id"] for e in read_ledger(ledger)} >= set(ids), 60, "every workflow ran a batch")
        with stack.processors(env, 1, f"rec{count}-b"):  # the survivor
            victim_pid = victim.pid
            victim.kill()
            kill = Kill(time.time(), victim_pid, "SIGKILL")
            owned = len(resume_delays(read_ledger(ledger), kill))
            wait_until(
                lambda: None not in resume_delays(read_ledger(ledger), kill).values(),
                RESUME_TIMEOUT, f"{owned} workflows resumed",
            )
            delays = list(resume_delays(read_ledger(ledger), kill).values())
    return Recovery(count, interval, owned, delays)


def _delays(delays: list[float]) -> list[str]:
    """p50, p99, max and p99 / TTL; dashes when no workflow was left on the victim at the kill
    (with sleeps they may all have moved to the survivor while it started: a small K at smoke sizes)."""
    if not delays:
        return ["–"] * 4
    p99 = percentile(delays, 99)
    return [fmt(percentile(delays, 50)), fmt(p99), fmt(max(delays)), f"{p99 / TTL_SECONDS:.2f}"]


def heartbeats(stack: Stack) -> tuple[int, int]:
    """(rejected, all) ``task.heartbeat`` requests the server has logged so far."""
    kind = "task.heartbeat"
    return server_requests(stack, REJECTED)[kind], server_requests(stack)[kind]


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    if not stack.durable:
        return Section(TITLE, "skipped: local mode is not durable (no Resonate server binary)", [], [])
    before = heartbeats(stack)
    results = [recover(stack, count, interval) for count, interval in sizes.cases]
    after = heartbeats(stack)
    rejected, sent = after[0] - before[0], after[1] - before[1]
    note = f"Lease renewals (`task.heartbeat`, from the server's log): {rejected} of {sent} rejected."
    if rejected:
        note += (
            " The server answers 400 \"All tasks must belong to the same origin\" when one heartbeat"
            " carries the tasks of several workflows, so leases are not extended: a lease lapses"
            f" {TTL_SECONDS} s after its task was last acquired and the workflow is re-dispatched (to"
            " either processor) even while its processor lives. The delay after a kill is then the"
            f" time to the next lapse — anywhere in 0–{TTL_SECONDS} s, set by when the kill falls —"
            " plus the survivor's replay of the finished steps, so it spreads by seconds from run to"
            " run. With working renewals it would be about one TTL after the last renewal."
        )
    rows = [
        [
            str(r.count), f"{r.interval:g} s" if r.interval else "none (steps back to back)",
            str(r.in_flight), str(len(r.delays)), *_delays(r.delays),
        ]
        for r in results
    ]

    def plot(ax: Axes) -> None:
        for r in results:
            sleep = f", {r.interval:g} s sleeps" if r.interval else ""
            if r.delays:
                plot_cdf(ax, r.delays, f"K = {r.count}{sleep}")
        ax.axvline(TTL_SECONDS, color="grey", linestyle=":", label=f"lease (TTL) {TTL_SECONDS} s")
        ax.set_xlabel("seconds from SIGKILL to the next step on the survivor")
        ax.set_ylabel("fraction of workflows resumed")
        ax.set_title(f"{TITLE[:2]} Recovery after SIGKILL of one of two processors")
        ax.legend()

    return Section(
        title=TITLE,
        settings=(
            f"2 processors; K long tombstones in flight on the victim; RESONATE_TTL_SECONDS={TTL_SECONDS} "
            f"(task lease), KAFKA_SESSION_TIMEOUT_MS={SESSION_TIMEOUT_MS}, server timer poll {TIMER_POLL_MS} ms. "
            f"Delay = SIGKILL → the workflow's next delete step in the survivor (from DELETE_LEDGER_PATH). "
            f"Without sleeps every workflow holds its lease at the kill (worst case); a workflow in a "
            f"durable sleep holds none and resumes when the sleep ends, wherever a processor is alive "
            f"(some had already moved to the survivor before the kill)."
        ),
        header=["K", "sleep between batches", "on victim at kill", "resumed", "p50 (s)", "p99 (s)", "max (s)", "p99 / TTL"],
        rows=rows,
        verdict=note,
        plot=plot,
    )
