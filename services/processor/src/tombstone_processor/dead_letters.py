"""Dead-lettering, in one place: a tombstone that cannot be processed goes to the dead-letter
topic, and whatever waits for it waits until the broker acknowledged the dead letter.

A write the broker refuses (the topic is missing, the record too large for it, an ACL, a quota)
is retried with backoff for as long as it takes. It is never given up on: giving up would lose
the record. While it is refused the letter is *stuck*: ``/readyz`` names it with the broker's
reason, the metrics count it, one log line per ``log_every`` seconds says it is still refused, and
when the letter holds an input offset back (an invalid record, a hand-off the server refused, a
local-mode workflow) the intake pauses that partition until it is written. Once the operator
fixes the topic, the next attempt goes through and everything resumes by itself.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from tombstone_common.logs import get_logger
from tombstone_common.messages import SourcePosition, dead_letter_headers
from tombstone_common.telemetry import headers_from
from tombstone_processor.effects import Publisher
from tombstone_processor.failures import reason
from tombstone_processor.retries import until_accepted

log = get_logger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """The original record, and why it is given up on."""

    key: bytes | None
    value: bytes | None
    source: SourcePosition
    reason: str
    error_class: str
    attempts: int | None = None
    generation: int = 0


@dataclass
class Stuck:
    """A dead letter the broker refuses, as ``/readyz`` and the metrics show it."""

    letter: DeadLetter
    holds_offset: bool
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    error: str = ""

    def line(self, topic: str) -> str:
        source = self.letter.source
        paused = f"; partition {source.topic}/{source.partition} paused" if self.holds_offset else ""
        return (
            f"{topic} refused the dead letter of {source.topic}/{source.partition}@{source.offset} "
            f"for {time.monotonic() - self.since:.0f}s ({self.attempts} attempts): {self.error}{paused}"
        )


@dataclass
class DeadLetterMetrics:
    """Written by :class:`DeadLetters` only."""

    dead_letter_refusals: int = 0  # refused write attempts, all letters
    stuck: dict[int, Stuck] = field(default_factory=dict)

    def stuck_partitions(self) -> set[tuple[str, int]]:
        """Partitions whose committed offset waits for a refused dead letter."""
        return {(s.letter.source.topic, s.letter.source.partition) for s in self.stuck.values() if s.holds_offset}


class DeadLetters:
    def __init__(
        self,
        publisher: Publisher,
        metrics: DeadLetterMetrics,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        log_every: float = 30.0,
    ) -> None:
        self._publisher = publisher
        self.metrics = metrics
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._log_every = log_every
        self._tokens = itertools.count()

    @property
    def topic(self) -> str:
        return self._publisher.topics.topic_dlq

    async def write(self, letter: DeadLetter, holds_offset: bool) -> None:
        """Return once the broker acknowledged ``letter``; retry every refusal until then.

        ``holds_offset``: the letter's input offset is not committed until this returns, so the
        intake pauses its partition while it is refused. Cancelling (shutdown, a revoked
        partition) is the only way out without a write; the record is then redelivered."""
        token = next(self._tokens)
        source = f"{letter.source.topic}/{letter.source.partition}@{letter.source.offset}"
        headers = [
            *dead_letter_headers(letter.reason, letter.error_class, letter.source, letter.attempts, letter.generation),
            *headers_from(),
        ]
        logged_at: float | None = None
        try:
            async for attempt in until_accepted(self._backoff_initial, self._backoff_max):
                with attempt:
                    try:
                        await self._publisher.dead_letter(letter.key, letter.value, headers)
                    except Exception as exc:  # every refusal is retried: giving up would lose the record
                        number = attempt.retry_state.attempt_number
                        stuck = self.metrics.stuck.setdefault(token, Stuck(letter, holds_offset))
                        stuck.attempts, stuck.error = number, reason(exc)
                        self.metrics.dead_letter_refusals += 1
                        now = time.monotonic()
                        if logged_at is None or now - logged_at >= self._log_every:
                            logged_at = now
                            log.error(
                                "dead-letter refused; retrying until the broker accepts it",
                                topic=self.topic,
                                source=source,
                                attempts=number,
                                stuck_seconds=round(now - stuck.since, 1),
                                partition_paused=holds_offset,
                                error=stuck.error,
                            )
                        raise
            if token in self.metrics.stuck:
                log.warning(
                    "dead-letter accepted after being refused", topic=self.topic, source=source,
                    attempts=self.metrics.stuck[token].attempts + 1,
                )
        finally:
            self.metrics.stuck.pop(token, None)

    def problem(self) -> str | None:
        """For ``/readyz``: every refused dead letter (the first three in full)."""
        stuck = sorted(self.metrics.stuck.values(), key=lambda s: s.since)
        if not stuck:
            return None
        lines = [s.line(self.topic) for s in stuck[:3]]
        if len(stuck) > 3:
            lines.append(f"and {len(stuck) - 3} more")
        return "; ".join(lines)
