"""The simulated deletion: batches that fail at random, and end at random (or after N)."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass

from tombstone_processor.settings import SimulationSettings
from tombstone_processor.state import DeletionMetrics


class DeleteError(Exception):
    """A transient failure of one delete attempt (``attempt``, from 1); Resonate retries it."""

    def __init__(self, message: str, attempt: int = 0) -> None:
        super().__init__(message)
        self.attempt = attempt


@dataclass(frozen=True)
class Work:
    """How much work a tombstone takes; ``None`` fields fall back to the settings."""

    batches: int | None = None
    error_rate: float | None = None


@dataclass(frozen=True)
class BatchResult:
    done: bool
    attempts: int
    finished_at: float


class Ledger:
    """An append-only record of every delete attempt, one JSON line each.

    Lines are written with a single ``write`` on an ``O_APPEND`` descriptor, so several
    processors can share one file without interleaving.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, **entry: object) -> None:
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())


class SimulatedDeleter:
    """Deletes one batch per call. Attempts are counted per durable step until it succeeds."""

    def __init__(
        self, settings: SimulationSettings, processor: str, metrics: DeletionMetrics | None = None
    ) -> None:
        self._settings = settings
        self._metrics = metrics if metrics is not None else DeletionMetrics()
        self._processor = processor
        self._random = random.Random()
        self._attempts: dict[str, dict[str, int]] = {}  # tombstone id -> step id -> attempts
        self._ledger = Ledger(settings.delete_ledger_path) if settings.delete_ledger_path else None

    def _rng(self, tombstone_id: str, batch: int, attempt: int) -> random.Random:
        seed = self._settings.simulation_seed
        if seed is None:
            return self._random
        return random.Random(f"{seed}/{tombstone_id}/{batch}/{attempt}")

    def count_attempt(self, tombstone_id: str, step_id: str) -> int:
        """Number this attempt of a durable step (retries of one step share its id)."""
        steps = self._attempts.setdefault(tombstone_id, {})
        steps[step_id] = steps.get(step_id, 0) + 1
        return steps[step_id]

    def forget(self, tombstone_id: str) -> None:
        """The workflow ended: its steps' counts are not needed any more."""
        self._attempts.pop(tombstone_id, None)

    def _finished_step(self, tombstone_id: str, step_id: str) -> None:
        steps = self._attempts.get(tombstone_id, {})
        steps.pop(step_id, None)
        if not steps:
            self._attempts.pop(tombstone_id, None)

    def delete_batch(self, step_id: str, tombstone_id: str, batch: int, work: Work, attempt: int) -> BatchResult:
        rng = self._rng(tombstone_id, batch, attempt)
        error_rate = self._settings.delete_error_rate if work.error_rate is None else work.error_rate
        failed = rng.random() < error_rate
        if work.batches is not None:
            done = batch >= work.batches
        else:
            done = rng.random() < self._settings.delete_done_rate
            done = done or batch >= self._settings.delete_max_batches
        if self._ledger:
            self._ledger.record(
                id=tombstone_id,
                batch=batch,
                attempt=attempt,
                ok=not failed,
                processor=self._processor,
                pid=os.getpid(),
                at=time.time(),
            )
        self._metrics.batch_attempts += 1
        if failed:
            self._metrics.batch_failures += 1
            if attempt >= self._settings.delete_max_attempts:
                self._finished_step(tombstone_id, step_id)
            raise DeleteError(f"batch {batch} of {tombstone_id} failed (attempt {attempt})", attempt)
        self._finished_step(tombstone_id, step_id)
        return BatchResult(done=done, attempts=attempt, finished_at=time.time())
