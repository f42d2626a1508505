"""What a processor is doing right now, for tests, logs and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProcessorState:
    consumed: int = 0
    started: int = 0
    duplicates: int = 0
    completed: int = 0
    dead_lettered: int = 0
    invalid: int = 0
    failed: int = 0
    commits: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0
    paused: bool = False
    pauses: int = 0
    assigned: set[tuple[str, int]] = field(default_factory=set)
    joined: bool = False  # the consumer has received its (possibly empty) first assignment

    def workflow_started(self) -> None:
        self.started += 1
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)

    def workflow_ended(self) -> None:
        self.in_flight -= 1
