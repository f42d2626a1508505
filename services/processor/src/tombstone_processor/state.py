"""What a processor is doing right now, for tests, logs and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram


@dataclass
class ProcessorState:
    consumed: int = 0
    started: int = 0
    duplicates: int = 0
    completed: int = 0
    dead_lettered: int = 0
    invalid: int = 0
    failed: int = 0
    batch_attempts: int = 0
    batch_failures: int = 0
    commits: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0
    paused: bool = False
    pauses: int = 0
    assigned: set[tuple[str, int]] = field(default_factory=set)
    joined: bool = False  # the consumer has received its (possibly empty) first assignment
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.workflow_seconds = Histogram(
            "tombstones_workflow_duration_seconds",
            "Hand-off to completion of workflows started here",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )

    def workflow_started(self) -> None:
        self.started += 1
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)

    def workflow_ended(self) -> None:
        self.in_flight -= 1
