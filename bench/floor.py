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

import contextlib
import json
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devstack.procs import Managed, wait_until
from harness.processes import clean_environ
from harness.procfs import cpu_seconds
from matplotlib.axes import Axes

from bench.profile import Profile, flame_graph, record
from bench.report import Section
from bench.stack import REPO, Stack, gauge, server_requests
from tombstone_common.messages import Tombstone
from tombstone_producer.produce import new_ids

TITLE = "1. The floor: pipeline vs bare resonate-sdk"

MAX_IN_FLIGHT = 100  # PROCESSOR_MAX_IN_FLIGHT's default, and the floor's bound
PARTITIONS = 8


@dataclass(frozen=True)
class Sizes:
    workflows: int = 4000
    rounds: int = 8  # the floors and the pipeline alternate, workflows / rounds at a time
    warm_up: int = 20


FULL, SMOKE = Sizes(), Sizes(workflows=6, rounds=2, warm_up=2)
FLOOR, KAFKA_FLOOR, PIPELINE = "bare resonate-sdk (floor)", "bare Kafka loop (Kafka floor)", "the pipeline, 1 processor"
TIMEOUT = 300.0
TARGET_THROUGHPUT, TARGET_CPU, TARGET_BROKER_MS = 0.90, 1.2, 0.3
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


def floor_round(stack: Stack, number: int, count: int, warm_up: int) -> Run:
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
        "FLOOR_WARM_UP": str(warm_up),
        "BENCH_RESULT_FILE": str(result),
        "BENCH_WATCH_PIDS": watched,
    }
    if stack.profile:
        env["BENCH_PROFILE_FILE"] = str(_profile_file(stack, FLOOR, number))
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


def pipeline_round(
    stack: Stack, names: dict[str, str], pids: dict[str, int], number: int, count: int, name: str = PIPELINE
) -> Run:
    """``count`` tombstones through a running worker (the processor, or the Kafka floor's)."""
    work = [Tombstone(id=tid, batches=1) for tid in new_ids(count, f"{names['TOPIC_TOMBSTONES']}-{number}")]
    sampled = stack.profile and name == PIPELINE and number >= 0
    with record(pids["client"], _profile_file(stack, name, number)) if sampled else contextlib.nullcontext():
        before, requests = {name: cpu_seconds(pid) for name, pid in pids.items()}, server_requests(stack)
        sent = stack.produce(names, work)
        done = stack.completions(names, [t.id for t in work], TIMEOUT)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    requests = server_requests(stack) - requests
    last = max(record.completed_at.timestamp() for record in done.values())
    return Run(name, count, last - sent, cpu, requests)


def _profile_file(stack: Stack, run: str, number: int) -> Path:
    return stack.run_dir / f"profile-{'floor' if run == FLOOR else 'pipeline'}-{number}.txt"


def _profile(stack: Stack, run: Run) -> Profile:
    """The rounds' samples of one run, added up."""
    merged = Profile(Counter())
    for path in stack.run_dir.glob(_profile_file(stack, run.name, 0).name.replace("-0.txt", "-*.txt")):
        merged.stacks.update(Profile.load(path).stacks)
    return merged


def profile_section(stack: Stack, base: Run, pipe: Run) -> tuple[str, dict]:
    """A table of CPU ms per workflow by part, floor client beside processor, and their flame graphs."""
    floor, pipeline = _profile(stack, base), _profile(stack, pipe)
    floor_costs = floor.costs(base.workflows, base.cpu["client"])
    pipeline_costs = pipeline.costs(pipe.workflows, pipe.cpu["client"])
    parts = sorted(set(floor_costs) | set(pipeline_costs), key=lambda p: -pipeline_costs.get(p, 0.0))
    lines = [
        "", f"**Where the CPU goes** (py-spy, {floor.rate} Hz, {floor.samples} and {pipeline.samples} samples; "
        "CPU ms per workflow by the innermost frame's part; these rounds carry py-spy's own cost):", "",
        "| part | floor client | processor | excess |", "|---|---|---|---|",
    ]
    for part in parts:
        a, b = floor_costs.get(part, 0.0), pipeline_costs.get(part, 0.0)
        lines.append(f"| {part} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    lines.append(f"| **all** | {sum(floor_costs.values()):.2f} | {sum(pipeline_costs.values()):.2f} | "
                 f"{sum(pipeline_costs.values()) - sum(floor_costs.values()):+.2f} |")
    lines += ["", "Most self time in the processor (innermost frames):", ""]
    lines += [f"- {share:.1%} `{frame}`" for frame, share in pipeline.top_frames(10)]
    pictures = {
        "flame-processor": lambda path: flame_graph(pipeline, path, f"record-processor, {pipe.workflows} workflows"),
        "flame-floor": lambda path: flame_graph(floor, path, f"bare resonate-sdk floor client, {base.workflows} workflows"),
    }
    return "\n".join(lines), pictures


def measure(stack: Stack, sizes: Sizes) -> tuple[Run, Run, Run]:
    """The floors and the pipeline take turns, so a change in the machine's load hits all three."""
    names = stack.topics("floor-pipeline", partitions=PARTITIONS)
    kafka_names = stack.topics("floor-kafka", partitions=PARTITIONS)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=0, PROCESSOR_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    floors: list[Run] = []
    kafka_floors: list[Run] = []
    pipelines: list[Run] = []
    with stack.processors(env, 1, "floor-p") as [processor], stack.kafka_worker("kafka_floor", stack.env(kafka_names)) as kafka:
        wait_until(lambda: gauge(processor, "tombstones_partitions_assigned") == PARTITIONS, 60, "partitions assigned")
        warm = [Tombstone(id=tid, batches=1) for tid in new_ids(sizes.warm_up, f"{names['TOPIC_TOMBSTONES']}-warm")]
        stack.produce(names, warm)
        stack.completions(names, [t.id for t in warm], TIMEOUT)
        pids = {"client": processor.pid, **_pids(stack)}
        kafka_pids = {"client": kafka.pid(), **_pids(stack)}
        pipeline_round(stack, kafka_names, kafka_pids, -1, sizes.warm_up, KAFKA_FLOOR)  # its warm-up
        each = sizes.workflows // sizes.rounds
        for number in range(sizes.rounds):
            floors.append(floor_round(stack, number, each, sizes.warm_up))
            kafka_floors.append(pipeline_round(stack, kafka_names, kafka_pids, number, each, KAFKA_FLOOR))
            pipelines.append(pipeline_round(stack, names, pids, number, each))
    return Run.total(floors), Run.total(kafka_floors), Run.total(pipelines)


def _ratio(a: float, b: float) -> float:
    """a / b; NaN when b is 0 (a span too short for /proc's 10 ms ticks, at smoke sizes)."""
    return a / b if b else float("nan")


def _kinds(run: Run) -> str:
    return ", ".join(f"{kind} {count / run.workflows:.2f}" for kind, count in sorted(run.requests.items()))


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    if not stack.durable:
        return Section(TITLE, "skipped: the floor is measured against a Resonate server (none here)", [], [])
    base, kafka, pipe = measure(stack, sizes)
    broker = pipe.cpu_ms("broker")
    # The broker's CPU while only the server works (the floor's rounds) is its idle cost: a
    # per-second cost, so per workflow it grows as throughput falls. What the records cost it is
    # the rest.
    idle_per_second = _ratio(base.cpu.get("broker", 0.0), base.seconds)
    def above_idle(run: Run) -> float:
        return max(0.0, 1000 * (run.cpu.get("broker", 0.0) - idle_per_second * run.seconds) / run.workflows)
    throughput = _ratio(pipe.per_second, base.per_second)
    cpu = _ratio(pipe.cpu_ms("client"), base.cpu_ms("client"))
    rows = [
        [
            r.name, str(r.workflows), f"{r.seconds:.1f}", f"**{r.per_second:.0f}**",
            f"**{_ratio(r.per_second, base.per_second):.0%}**",
            *(f"{r.cpu_ms(p):.2f}" for p in PROCESSES), f"{r.total_cpu_ms():.2f}",
            f"{_ratio(r.cpu_ms('client'), base.cpu_ms('client')):.2f}×", f"{r.requests_per_workflow():.1f}",
        ]
        for r in (base, kafka, pipe)
    ]
    verdict = (
        f"Throughput pipeline / floor ≥ {TARGET_THROUGHPUT:.0%}: "
        f"{'met' if throughput >= TARGET_THROUGHPUT else 'MISSED'} ({throughput:.0%}); processor CPU per "
        f"workflow ≤ {TARGET_CPU}× the floor client's: {'met' if cpu <= TARGET_CPU else 'MISSED'} ({cpu:.2f}×); "
        f"broker CPU per workflow ≤ {TARGET_BROKER_MS} ms: {'met' if broker <= TARGET_BROKER_MS else 'MISSED'} "
        f"({broker:.2f} ms; the Kafka floor's {kafka.cpu_ms('broker'):.2f} ms). The broker idles at "
        f"{idle_per_second:.1%} of a core (its CPU while only the server works), which at the pipeline's rate is "
        f"{_ratio(1000 * idle_per_second, pipe.per_second):.2f} ms per workflow by itself; above that idle cost the records "
        f"cost it {above_idle(pipe):.2f} ms per workflow through the pipeline and {above_idle(kafka):.2f} ms through "
        f"the Kafka floor. "
        f"Server requests per workflow — floor: {_kinds(base)}; pipeline: {_kinds(pipe)}. "
        f"Every process shares {os.cpu_count()} cores: when the machine is the limit, throughput "
        f"pipeline / floor tends to total CPU floor / pipeline ({_ratio(base.total_cpu_ms(), pipe.total_cpu_ms()):.0%} here)."
    )
    pictures: dict = {}
    if stack.profile:
        table, pictures = profile_section(stack, base, pipe)
        verdict += "\n" + table

    def plot(ax: Axes) -> None:
        runs = (base, kafka, pipe)
        labels = [f"floor\n{base.per_second:.0f} wf/s", f"Kafka floor\n{kafka.per_second:.0f} rec/s",
                  f"pipeline\n{pipe.per_second:.0f} wf/s ({throughput:.0%})"]
        bottom = [0.0, 0.0, 0.0]
        for process, colour in zip(PROCESSES, ("tab:blue", "tab:orange", "tab:green")):
            heights = [r.cpu_ms(process) for r in runs]
            name = "processor / floor client / Kafka loop" if process == "client" else process
            ax.bar(labels, heights, bottom=bottom, color=colour, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.set_ylabel("CPU ms per workflow")
        ax.set_title(f"{TITLE[:2]} Floor: {sizes.workflows} 1-batch workflows, bound {MAX_IN_FLIGHT}")
        ax.legend()

    return Section(
        title=TITLE,
        settings=(
            f"{sizes.workflows} workflows of one delete step + one publish step, no sleeps, at most {MAX_IN_FLIGHT} "
            f"in flight, same Resonate server; the three take turns, {sizes.workflows // sizes.rounds} workflows at a time, "
            f"so a change in the machine's load hits all. Floor: `bench/floor_client.py` (bare "
            f"resonate-sdk, no Kafka, no tracing), first start → last result. Kafka floor: `bench/kafka_floor.py`, "
            f"the same records consumed and their `processed` records produced and committed in batches, no "
            f"workflow, first send → last record. Pipeline: 1 `record-processor`, "
            f"{PARTITIONS} partitions, first send → last completion. CPU = utime + stime from `/proc/<pid>/stat` "
            f"over the same span; requests from the server's log."
        ),
        header=["run", "workflows", "seconds", "workflows/s", "vs floor", "CPU ms/wf: client",
                "server", "broker", "all", "client CPU vs floor", "server requests/wf"],
        rows=rows,
        verdict=verdict,
        plot=plot,
        pictures=pictures,
    )
