"""Scenario — latency at low load: one tombstone at a time, produce → ``processed`` received.

One partition, 1-batch tombstones, no sleeps. Each tombstone is produced only after the previous
one's ``processed`` record arrived, so nothing queues. The same for ``bench.baseline`` (one
message at a time, synchronous publish). Each sample is split at three instants the record and
the delete ledger carry (same clock, one machine):

* Kafka in — send → the worker built the job (``started_at``): produce, broker, poll, decode;
* hand-off — → the delete step runs (ledger): promise and task on the server, acquire, dispatch;
* steps — → the publish step builds the record (``completed_at``): delete, its durable result,
  the publish step's promise;
* Kafka out — → the record is read back: produce, acknowledgement, fetch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition
from matplotlib.axes import Axes

from bench.report import Section, plot_cdf
from bench.stack import Stack
from harness.ledger import read_ledger
from harness.stats import percentile
from tombstone_common.messages import ProcessedRecord, Tombstone
from tombstone_producer.produce import new_ids

TITLE = "2. Latency at low load"
SAMPLE_TIMEOUT = 30.0
TARGET_P50_MS, TARGET_P99_MS = 10, 30
PARTS = ("Kafka in", "hand-off", "steps", "Kafka out")


@dataclass(frozen=True)
class Sizes:
    samples: int = 200
    warm_up: int = 10


FULL, SMOKE = Sizes(), Sizes(samples=3, warm_up=1)


@dataclass
class Latencies:
    worker: str
    total: list[float] = field(default_factory=list)  # seconds, one per sample
    parts: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in PARTS})

    def add(self, sent: float, record: ProcessedRecord, deleted: float, received: float) -> None:
        started, completed = record.started_at.timestamp(), record.completed_at.timestamp()
        self.total.append(received - sent)
        for part, (begin, end) in zip(PARTS, ((sent, started), (started, deleted), (deleted, completed), (completed, received))):
            self.parts[part].append(end - begin)


class RoundTrip:
    """A producer onto the tombstones topic and a reader of the processed topic, kept open."""

    def __init__(self, bootstrap: str, names: dict[str, str]) -> None:
        self._topic = names["TOPIC_TOMBSTONES"]
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0})
        self._reader = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"{names['KAFKA_CONSUMER_GROUP']}-reader",
            "enable.auto.commit": False, "fetch.wait.max.ms": 10,
        })
        self._reader.assign([TopicPartition(names["TOPIC_PROCESSED"], 0, 0)])

    def send_and_wait(self, tombstone: Tombstone) -> tuple[float, ProcessedRecord, float]:
        """(sent, record, received): epoch seconds around one tombstone's way through."""
        sent = time.time()
        self._producer.produce(self._topic, key=tombstone.id, value=tombstone.to_value())
        self._producer.flush(10)
        deadline = time.monotonic() + SAMPLE_TIMEOUT
        while time.monotonic() < deadline:
            message = self._reader.poll(0.05)
            if message is None or message.error() or message.key() != tombstone.id.encode():
                continue
            return sent, ProcessedRecord.model_validate_json(message.value()), time.time()
        raise TimeoutError(f"no processed record for {tombstone.id} after {SAMPLE_TIMEOUT:.0f}s")

    def close(self) -> None:
        self._reader.close()


@contextmanager
def worker(stack: Stack, name: str, env: dict[str, str]) -> Iterator[None]:
    with stack.processors(env, 1, "lat-p") if name == "processor" else stack.baseline(env):
        yield


def measure(stack: Stack, name: str, sizes: Sizes) -> Latencies:
    names = stack.topics(f"latency-{name}", partitions=1)
    ledger = stack.ledger_path(names)
    env = stack.env(names, DELETE_BATCH_INTERVAL_SECONDS=0, DELETE_LEDGER_PATH=ledger)
    result = Latencies(name)
    samples: list[tuple[float, ProcessedRecord, float]] = []
    with worker(stack, name, env):
        trip = RoundTrip(stack.bootstrap, names)
        try:
            for number, tombstone_id in enumerate(new_ids(sizes.warm_up + sizes.samples, names["TOPIC_TOMBSTONES"])):
                sample = trip.send_and_wait(Tombstone(id=tombstone_id, batches=1))
                if number >= sizes.warm_up:
                    samples.append(sample)
        finally:
            trip.close()
    deleted = {entry["id"]: entry["at"] for entry in read_ledger(ledger) if entry["ok"]}
    for sent, record, received in samples:
        result.add(sent, record, deleted[record.id], received)
    return result


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.1f}"


def run(stack: Stack, sizes: Sizes = FULL) -> Section:
    results = [measure(stack, "processor", sizes), measure(stack, "baseline", sizes)]
    rows = [
        [
            r.worker, str(len(r.total)), f"**{_ms(r.total, 50)}**", f"**{_ms(r.total, 99)}**",
            *(f"{_ms(r.parts[part], 50)} / {_ms(r.parts[part], 99)}" for part in PARTS),
        ]
        for r in results
    ]
    proc, base = results
    p50, p99 = 1000 * percentile(proc.total, 50), 1000 * percentile(proc.total, 99)
    verdict = (
        f"processor p50 ≤ {TARGET_P50_MS} ms: {'met' if p50 <= TARGET_P50_MS else 'MISSED'} ({p50:.0f} ms), "
        f"p99 ≤ {TARGET_P99_MS} ms: {'met' if p99 <= TARGET_P99_MS else 'MISSED'} ({p99:.0f} ms); "
        f"processor / baseline at p50: {percentile(proc.total, 50) / percentile(base.total, 50):.1f}×, "
        f"at p99: {percentile(proc.total, 99) / percentile(base.total, 99):.1f}×."
    )

    def plot(ax: Axes) -> None:
        for r in results:
            plot_cdf(ax, [1000 * v for v in r.total], r.worker)
        ax.axvline(TARGET_P50_MS, color="grey", linestyle=":", label=f"p50 target {TARGET_P50_MS} ms")
        ax.set_xscale("log")
        ax.set_xlabel("produce → processed received (ms)")
        ax.set_ylabel("fraction of tombstones")
        ax.set_title(f"{TITLE[:2]} Latency: {sizes.samples} tombstones one at a time, 1 batch, no sleep")
        ax.legend()

    return Section(
        title=TITLE,
        settings=(
            f"1 partition; {sizes.samples} tombstones of 1 batch (after {sizes.warm_up} warm-up), each produced once the "
            f"previous one's `processed` record was read; DELETE_BATCH_INTERVAL_SECONDS=0. Latency = send → "
            f"`processed` record received. Parts (p50 / p99, ms): Kafka in = send → job built "
            f"(`started_at`); hand-off = → delete step ran (ledger); steps = → publish step built the record "
            f"(`completed_at`); Kafka out = → record read."
        ),
        header=["worker", "samples", "p50 (ms)", "p99 (ms)", *(f"{part} p50 / p99" for part in PARTS)],
        rows=rows,
        verdict=verdict,
        plot=plot,
    )
