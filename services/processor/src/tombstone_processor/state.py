"""What a processor is doing right now, for tests, probes and metrics.

Each part of the processor owns the counters it changes and is the only one that writes them:
the intake (:class:`IntakeMetrics`), the dispatcher (:class:`WorkflowMetrics`), the simulated
deletion (:class:`DeletionMetrics`), the dead-letter writer (:class:`DeadLetterMetrics`) and
giving up (:class:`~tombstone_processor.giving_up.GiveUpMetrics`). :class:`ProcessorState` is a
read-only view over the five.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

from prometheus_client import CollectorRegistry, Histogram

from tombstone_processor.dead_letters import DeadLetterMetrics
from tombstone_processor.giving_up import GiveUpMetrics

Partition = tuple[str, int]


@dataclass
class IntakeMetrics:
    """Written by the intake only."""

    consumed: int = 0
    commits: int = 0
    paused: bool = False
    pauses: int = 0
    assigned: set[Partition] = field(default_factory=set)
    held: set[Partition] = field(default_factory=set)  # paused until a refused dead letter is accepted
    joined: bool = False  # the consumer holds a (possibly empty) assignment of its group
    lost: bool = False  # its partitions were taken away without a revoke (session timed out)
    lag: dict[Partition, int] = field(default_factory=dict)
    pending: int = 0  # records taken whose offset has not settled yet
    progressed_at: float = field(default_factory=time.monotonic)  # last completed loop iteration

    def stalled_for(self) -> float:
        return time.monotonic() - self.progressed_at


@dataclass
class WorkflowMetrics:
    """Written by the dispatcher only."""

    registry: CollectorRegistry
    started: int = 0  # workflows whose promise was created (or joined) by a hand-off from here
    duplicates: int = 0
    completed: int = 0
    cancelled: int = 0  # ended by record-admin cancel, with a processed record saying so
    handoff_retries: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0

    def __post_init__(self) -> None:
        self.workflow_seconds = Histogram(
            "tombstones_workflow_duration_seconds",
            "Hand-off to completion of workflows started here",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )


@dataclass
class DeletionMetrics:
    """Written by the simulated deletion only."""

    batch_attempts: int = 0
    batch_failures: int = 0


class ProcessorState:
    """A read-only view over the parts' metrics: ``state.completed``, ``state.consumed``, …"""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.intake = IntakeMetrics()
        self.workflows = WorkflowMetrics(self.registry)
        self.deletions = DeletionMetrics()
        self.dead_letters = DeadLetterMetrics()
        self.giving_up = GiveUpMetrics()
        self._owners = {
            f.name: part
            for part in (self.intake, self.workflows, self.deletions, self.dead_letters, self.giving_up)
            for f in fields(part)
            if f.name != "registry"
        }

    def __getattr__(self, name: str) -> object:
        owners = self.__dict__.get("_owners", {})
        if name in owners:
            return getattr(owners[name], name)
        raise AttributeError(name)
