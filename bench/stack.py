"""The real services every scenario runs against, and the few moves they all make.

One Kafka broker and (when a ``resonate`` binary exists) one Resonate server for the whole run,
on free loopback ports; each scenario gets its own topics, consumer group and Resonate group.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from confluent_kafka import Consumer, Producer
from devstack.kafka import JVM_OPTIONS, JVM_PRODUCTION_OPTIONS, KafkaBroker
from devstack.postgres import PostgresServer, storage_backend
from devstack.postgres import available as postgres_available
from devstack.procs import Managed
from devstack.resonate import ResonateServer, server_binary
from harness.kafka import read_until
from harness.processes import ProcessorProcess, clean_environ, metric
from harness.topics import create_topics, send_tombstones
from tombstone_common.kafka import producer_config
from tombstone_common.messages import ProcessedRecord, Tombstone
from tombstone_common.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
TIMER_POLL_MS = 100  # how often the server fires durable sleeps and expired leases
# The broker's JVM: a production broker's settings (default), or the quick-starting development
# ones that the tests use (BENCH_BROKER_JVM=dev), to see what the settings buy.
BROKER_JVM = {"production": JVM_PRODUCTION_OPTIONS, "dev": JVM_OPTIONS}

# Deterministic work unless a scenario says otherwise: fixed batches, no random failures.
DETERMINISTIC = {
    "DELETE_ERROR_RATE": "0",
    "SIMULATION_SEED": "1",
    "OTEL_TRACES_EXPORTER": "none",
    "PROCESSOR_SHUTDOWN_GRACE_SECONDS": "2",
}


@dataclass
class Stack:
    run_dir: Path
    broker: KafkaBroker
    server: ResonateServer | None  # None: the processors run in local (in-process) mode
    profile: bool = False  # the floor samples its processor and floor client with py-spy (bench/profile.py)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def durable(self) -> bool:
        return self.server is not None

    @property
    def mode(self) -> str:
        if self.server is None:
            return "LOCAL MODE (in-process, not durable)"
        return f"durable (Resonate server on {self.server.storage})"

    @contextmanager
    def on_other_store(self) -> Iterator[Stack | None]:
        """This stack with a second Resonate server of its own on the other store (PostgreSQL
        beside SQLite, or SQLite beside PostgreSQL), for the scenarios that compare them; None
        when there is no server, or PostgreSQL is not installed."""
        if self.server is None or (self.server.storage == "sqlite" and not postgres_available()):
            yield None
            return
        other = "postgres" if self.server.storage == "sqlite" else "sqlite"
        with resonate_server(self.run_dir / f"other-store-{uuid.uuid4().hex[:6]}", other) as server:
            yield replace(self, server=server)

    def topics(self, scenario: str, partitions: int) -> dict[str, str]:
        """Fresh topics and groups for one scenario, created on the broker."""
        run = f"{scenario}-{uuid.uuid4().hex[:6]}"
        names = {
            "TOPIC_TOMBSTONES": f"bench-{run}",
            "TOPIC_PROCESSED": f"bench-{run}.processed",
            "TOPIC_DLQ": f"bench-{run}.dlq",
            "KAFKA_CONSUMER_GROUP": f"bench-{run}",
            "RESONATE_GROUP": f"bench-{run}",
        }
        create_topics(self.bootstrap, names, partitions)
        return names

    def env(self, names: dict[str, str], **settings: object) -> dict[str, str]:
        """A processor's whole configuration: the stack, the topics, deterministic work, extras."""
        env = {**DETERMINISTIC, **names, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.server is not None:
            env["RESONATE_URL"] = self.server.url
        return env | {key: str(value) for key, value in settings.items()}

    def ledger_path(self, names: dict[str, str]) -> Path:
        return self.run_dir / f"{names['TOPIC_TOMBSTONES']}.ledger.jsonl"

    @cached_property
    def _producer(self) -> Producer:
        """One producer for the whole run. A new one per round would start each round's clock
        with its connection and idempotence handshake (about half a second)."""
        return Producer(producer_config(KafkaSettings(kafka_bootstrap_servers=self.bootstrap, _env_file=None)))

    def produce(self, names: dict[str, str], tombstones: list[Tombstone]) -> float:
        """Send ``tombstones`` in order; return the epoch second the first one was sent."""
        started = time.time()
        send_tombstones(self.bootstrap, names, tombstones, producer=self._producer)
        return started

    def completions(self, names: dict[str, str], ids: list[str], timeout: float) -> dict[str, ProcessedRecord]:
        """The first ``processed`` record of every id in ``ids`` (fails after ``timeout``)."""
        wanted = set(ids)
        records = read_until(
            self.bootstrap,
            names["TOPIC_PROCESSED"],
            lambda seen: wanted <= {record.key for record in seen},
            timeout=timeout,
        )
        first: dict[str, ProcessedRecord] = {}
        for record in records:
            if record.key in wanted and record.key not in first:
                first[record.key] = ProcessedRecord.model_validate_json(record.value)
        return first

    @contextmanager
    def processors(self, env: dict[str, str], count: int, prefix: str) -> Iterator[list[ProcessorProcess]]:
        """``count`` ``record-processor`` processes in one consumer group; killed on the way out."""
        started: list[ProcessorProcess] = []
        try:
            for number in range(1, count + 1):
                processor = ProcessorProcess(f"{prefix}{number}", env, self.run_dir)
                started.append(processor)
                processor.start()
            yield started
        finally:
            for processor in started:
                processor.kill()

    @contextmanager
    def baseline(self, env: dict[str, str]) -> Iterator[Managed]:
        """``bench.baseline`` (one message at a time) with a processor's ``env``; stopped on the way out."""
        with self.kafka_worker("baseline", env) as worker:
            yield worker

    @contextmanager
    def kafka_worker(self, module: str, env: dict[str, str]) -> Iterator[Managed]:
        """``python -m bench.<module>``, a Kafka-only worker, with a processor's ``env``; ready
        once its consumer has its partitions; stopped on the way out."""
        ready = self.run_dir / f"{env['KAFKA_CONSUMER_GROUP']}.ready"
        worker = Managed(module.replace("_", "-"), self.run_dir)
        env = {**clean_environ(), **env, "PROCESSOR_NAME": module, "BENCH_READY_FILE": str(ready), "PYTHONPATH": str(REPO)}
        worker.start(
            [sys.executable, "-m", f"bench.{module}"], ready.exists, 60, env=env, cwd=self.run_dir, inherit_env=False
        )
        try:
            yield worker
        finally:
            worker.stop(timeout=5)


def gauge(processor: ProcessorProcess, name: str) -> float:
    """A metric of a running processor; -1 when it does not answer (busy or gone)."""
    value = metric(processor.metrics(), name)
    return -1.0 if value is None else value


ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECEIVED, REJECTED = "Received request", "Request rejected"


def server_requests(stack: Stack, outcome: str = RECEIVED) -> Counter[str]:
    """Requests the Resonate server has logged so far, by kind (``task.create``, …)."""
    assert stack.server is not None
    log = ANSI.sub("", stack.server.process.log_file.read_text(errors="replace"))
    return Counter(re.findall(re.escape(outcome) + r" kind=([\w.]+)", log))


WARM_UP_SECONDS = 20.0


def warm_up_broker(bootstrap: str, seconds: float = WARM_UP_SECONDS) -> int:
    """Small produce and fetch requests for ``seconds``, as the pipeline sends them, before any
    measurement: a JVM compiles its hot code only after thousands of calls, and a production
    broker has long done so. Returns the records that went round."""
    topic = f"bench-warm-up-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, {"TOPIC_TOMBSTONES": topic, "TOPIC_PROCESSED": f"{topic}.out", "TOPIC_DLQ": f"{topic}.dlq"}, 4)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.subscribe([topic])
    received, deadline = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for number in range(8):
                producer.produce(topic, key=str(number), value=b"x" * 200)
            producer.flush(10)
            received += len([m for m in consumer.consume(100, timeout=0.001) if not m.error()])
    finally:
        consumer.close()
    return received


def broker_jvm() -> str:
    name = os.environ.get("BENCH_BROKER_JVM", "production")
    if name not in BROKER_JVM:
        raise SystemExit(f"BENCH_BROKER_JVM={name!r}: expected one of {', '.join(BROKER_JVM)}")
    return name


@contextmanager
def running_stack(run_dir: Path, profile: bool = False) -> Iterator[Stack]:
    """Start the broker and, when its binary exists, the Resonate server (on the store that
    STACK_RESONATE_STORAGE selects, as `make up` does); stop them all at the end."""
    broker = KafkaBroker.on_free_ports(run_dir / "kafka", CACHE, BROKER_JVM[broker_jvm()])
    broker.start()
    try:
        warm_up_broker(broker.bootstrap_servers)
        with contextlib.ExitStack() as servers:
            server = None
            if server_binary() is not None:
                server = servers.enter_context(resonate_server(run_dir, storage_backend()))
            yield Stack(run_dir, broker, server, profile)
    finally:
        broker.stop()


@contextmanager
def resonate_server(home: Path, storage: str) -> Iterator[ResonateServer]:
    """A Resonate server under ``home`` on ``storage`` (sqlite, or a PostgreSQL of its own);
    stopped, with its database, on the way out."""
    store = PostgresServer.on_free_port(home / "postgres") if storage == "postgres" else None
    server = ResonateServer.on_free_ports(home / "resonate", timer_poll_ms=TIMER_POLL_MS, postgres=store)
    try:
        if store is not None:
            store.start()
        server.start()
        yield server
    finally:
        server.stop()
        if store is not None:
            store.stop()
