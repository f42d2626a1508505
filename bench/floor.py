"""Scenario — the floor: the pipeline beside bare resonate-sdk running the same workflow shape.

Both sides run 1-batch work with no sleeps against the same Resonate server, under the same
concurrency bound, taking turns in the same run (a quarter of the work at a time, so a change in
the machine's load hits both):

* the floor: ``bench.floor_client`` — a delete step and a publish step per workflow, started and
  followed as the processor's dispatcher does, no Kafka, no tracing;
* the pipeline: one ``record-processor`` taking the same number of tombstones from Kafka.

Reported as ratios: throughput pipeline / floor, and CPU ms per workflow of the processor, the
floor's client, the server and the broker (``/proc/<pid>/stat``), with the server's requests
per workflow (from its log) beside them.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass

from devstack.procs import Managed, wait_until
from harness.processes import clean_environ
from harness.procfs import cpu_seconds
from matplotlib.axes import Axes

from bench.report import Section
from bench.stack import REPO, Stack, gauge, server_requests
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "1. The floor: pipeline vs bare resonate-sdk"

WORKFLOWS = 2000
MAX_IN_FLIGHT = 100  # PROCESSOR_MAX_IN_FLIGHT's default, and the floor's bound
PARTITIONS = 8
WARM_UP = 20
ROUNDS = 4  # floor and pipeline alternate, WORKFLOWS / ROUNDS at a time
FLOOR, PIPELINE = "bare resonate-sdk (floor)", "the pipeline, 1 processor"
TIMEOUT = 300.0
TARGET_THROUGHPUT, TARGET_CPU = 0.90, 1.2
PROCESSES = ("client", "server", "broker")


@dataclass
class Run:
    name: str
    workflows: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds over the run: "client" (processor or floor client), server, broker
    requests: Counter[str]  # server requests over the run, by kind

    @property
    def per_second(self) -> float:
        return self.workflows / self.seconds

    def cpu_ms(self, process: str) -> float:
        return 1000 * self.cpu.get(process, 0.0) / self.workflows

    @classmethod
    def total(cls, runs: list[Run]) -> Run:
        return cls(
            runs[0].name, sum(r.workflows for r in runs), sum(r.seconds for r in runs),
            {p: sum(r.cpu.get(p, 0.0) for r in runs) for p in PROCESSES}, sum((r.requests for r in runs), Counter()),
        )

    def total_cpu_ms(self) -> float:
        """Every process of the run, per workflow: what the machine spends on one."""
        return sum(self.cpu_ms(p) for p in PROCESSES)

    def requests_per_workflow(self) -> float:
        return sum(self.requests.values()) / self.workflows


def _pids(stack: Stack) -> dict[str, int]:
    assert stack.server is not None
    pids = {"server": stack.server.process.pid(), "broker": stack.broker.process.pid()}
    assert all(pids.values()), pids
    return pids  # type: ignore[return-value]


def floor_round(stack: Stack, number: int, count: int) -> Run:
    result = stack.run_dir / f"floor-{number}.json"
    watched = ",".join(f"{name}={pid}" for name, pid in _pids(stack).items())
    run_id = f"bench-floor-{uuid.uuid4().hex[:6]}"
    env = {
        **clean_environ(),
        "PYTHONPATH": str(REPO),
        "RESONATE_URL": stack.server.url,  # type: ignore[union-attr]
        "RESONATE_GROUP": run_id,
        "FLOOR_PREFIX": run_id,
        "FLOOR_WORKFLOWS": str(count),
        "FLOOR_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "BENCH_RESULT_FILE": str(result),
        "BENCH_WATCH_PIDS": watched,
    }
    client = Managed(f"floor-client-{number}", stack.run_dir)
    before = server_requests(stack)
    client.spawn([sys.executable, "-m", "bench.floor_client"], env=env, cwd=stack.run_dir, inherit_env=False)
    try:
        wait_until(lambda: client.returncode is not None, TIMEOUT, "the floor client")
    finally:
        client.kill()
    if client.returncode != 0 or not result.exists():
        raise RuntimeError(f"floor client exited with {client.returncode}:\n{client.tail()}")
    measured = json.loads(result.read_text())
    # The count includes the client's warm-up: a few requests, the same kinds.
    requests = server_requests(stack) - before
    return Run(FLOOR, measured["workflows"], measured["seconds"], measured["cpu_seconds"], requests)


def pipeline_round(stack: Stack, names: dict[str, str], pids: dict[str, int], number: int, count: int) -> Run:
    work = [Tombstone(id=tid, batches=1) for tid in new_ids(count, f"{names['TOPIC_TOMBSTONES']}-{number}")]
    before, requests = {name: cpu_seconds(pid) for name, pid in pids.items()}, server_requests(stack)
    sent = stack.produce(names, work)
    done = stack.completions(names, [t.id for t in work], TIMEOUT)
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    requests = server_requests(stack) - requests
    last = max(record.completed_at.timestamp() for record in done.values())
    return Run(PIPELINE, count, last - sent, cpu, requests)


def measure(stack: Stack) -> tuple[Run, Run]:
    """The floor and the pipeline take turns, so a change in the machine's load hits both."""
    names = stack.topics("floor-pipeline", partitions=PARTITIONS)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=0, PROCESSOR_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    floors: list[Run] = []
    pipelines: list[Run] = []
    with stack.processors(env, 1, "floor-p") as [processor]:
        wait_until(lambda: gauge(processor, "tombstones_partitions_assigned") == PARTITIONS, 60, "partitions assigned")
        warm = [Tombstone(id=tid, batches=1) for tid in new_ids(WARM_UP, f"{names['TOPIC_TOMBSTONES']}-warm")]
        stack.produce(names, warm)
        stack.completions(names, [t.id for t in warm], TIMEOUT)
        pids = {"client": processor.pid, **_pids(stack)}
        for number in range(ROUNDS):
            floors.append(floor_round(stack, number, WORKFLOWS // ROUNDS))
            pipelines.append(pipeline_round(stack, names, pids, number, WORKFLOWS // ROUNDS))
    return Run.total(floors), Run.total(pipelines)


def _kinds(run: Run) -> str:
    return ", ".join(f"{kind} {count / run.workflows:.2f}" for kind, count in sorted(run.requests.items()))


def run(stack: Stack) -> Section:
    if not stack.durable:
        return Section(TITLE, "skipped: the floor is measured against a Resonate server (none here)", [], [])
    base, pipe = measure(stack)
    throughput = pipe.per_second / base.per_second
    cpu = pipe.cpu_ms("client") / base.cpu_ms("client")
    rows = [
        [
            r.name, str(r.workflows), f"{r.seconds:.1f}", f"**{r.per_second:.0f}**",
            f"**{r.per_second / base.per_second:.0%}**",
            *(f"{r.cpu_ms(p):.2f}" for p in PROCESSES), f"{r.total_cpu_ms():.2f}",
            f"{r.cpu_ms('client') / base.cpu_ms('client'):.2f}×", f"{r.requests_per_workflow():.1f}",
        ]
        for r in (base, pipe)
    ]
    verdict = (
        f"Throughput pipeline / floor ≥ {TARGET_THROUGHPUT:.0%}: "
        f"{'met' if throughput >= TARGET_THROUGHPUT else 'MISSED'} ({throughput:.0%}); processor CPU per "
        f"workflow ≤ {TARGET_CPU}× the floor client's: {'met' if cpu <= TARGET_CPU else 'MISSED'} ({cpu:.2f}×). "
        f"Server requests per workflow — floor: {_kinds(base)}; pipeline: {_kinds(pipe)}. "
        f"Every process shares {os.cpu_count()} cores: when the machine is the limit, throughput "
        f"pipeline / floor tends to total CPU floor / pipeline ({base.total_cpu_ms() / pipe.total_cpu_ms():.0%} here)."
    )

    def plot(ax: Axes) -> None:
        runs = (base, pipe)
        labels = [f"floor\n{base.per_second:.0f} wf/s", f"pipeline\n{pipe.per_second:.0f} wf/s ({throughput:.0%})"]
        bottom = [0.0, 0.0]
        for process, colour in zip(PROCESSES, ("tab:blue", "tab:orange", "tab:green")):
            heights = [r.cpu_ms(process) for r in runs]
            name = "processor / floor client" if process == "client" else process
            ax.bar(labels, heights, bottom=bottom, color=colour, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.set_ylabel("CPU ms per workflow")
        ax.set_title(f"{TITLE[:2]} Floor: {WORKFLOWS} 1-batch workflows, bound {MAX_IN_FLIGHT}")
        ax.legend()

    return Section(
        title=TITLE,
        settings=(
            f"{WORKFLOWS} workflows of one delete step + one publish step, no sleeps, at most {MAX_IN_FLIGHT} "
            f"in flight, same Resonate server; the two take turns, {WORKFLOWS // ROUNDS} workflows at a time, "
            f"so a change in the machine's load hits both. Floor: `bench/floor_client.py` (bare "
            f"resonate-sdk, no Kafka, no tracing), first start → last result. Pipeline: 1 `record-processor`, "
            f"{PARTITIONS} partitions, first send → last completion. CPU = utime + stime from `/proc/<pid>/stat` "
            f"over the same span; requests from the server's log."
        ),
        header=["run", "workflows", "seconds", "workflows/s", "vs floor", "CPU ms/wf: client",
                "server", "broker", "all", "client CPU vs floor", "server requests/wf"],
        rows=rows,
        verdict=verdict,
        plot=plot,
    )
