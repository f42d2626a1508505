"""The dead letters, and putting them back on the tombstones topic to run again.

A replayed tombstone runs as the next *generation* of its workflow: its record carries the
generation in a header, the processor starts the workflow under an id made of the tombstone id
and the generation (:mod:`tombstone_processor.ids`), and the ``processed`` or dead-letter record
of that run carries it too. Replaying the same letter twice puts the same generation on the topic
twice, and the second record joins the first one's workflow: nothing runs twice.

The loop guard: a letter whose tombstone has already been replayed ``DLQ_MAX_REPLAYS`` times
(its generation) stays where it is, and the replay says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import KafkaError, Producer

from tombstone_common.kafka import create_client, describe, producer_config
from tombstone_common.messages import (
    GENERATION_HEADER,
    REPLAYED_FROM_HEADER,
    DeadLetterHeader,
    SourcePosition,
)
from tombstone_common.settings import PipelineSettings
from tombstone_processor.admin.topics import Record, read_topic


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic."""

    record: Record
    id: str
    reason: str
    error_class: str
    source: SourcePosition | None
    attempts: int | None
    generation: int

    @classmethod
    def of(cls, record: Record) -> Letter:
        partition, offset = record.header(DeadLetterHeader.SOURCE_PARTITION), record.header(DeadLetterHeader.SOURCE_OFFSET)
        topic = record.header(DeadLetterHeader.SOURCE_TOPIC)
        source = (
            SourcePosition(topic=topic, partition=int(partition), offset=int(offset))
            if topic is not None and partition and partition.isdigit() and offset and offset.isdigit()
            else None
        )
        attempts = record.header(DeadLetterHeader.ATTEMPTS)
        generation = record.header(DeadLetterHeader.GENERATION)
        return cls(
            record=record,
            id=_id_of(record),
            reason=record.header(DeadLetterHeader.REASON) or "",
            error_class=record.header(DeadLetterHeader.ERROR_CLASS) or "",
            source=source,
            attempts=int(attempts) if attempts and attempts.isdigit() else None,
            generation=int(generation) if generation and generation.isdigit() else 0,
        )

    @property
    def time(self) -> datetime | None:
        return self.record.timestamp

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "error_class": self.error_class,
            "reason": self.reason,
            "generation": self.generation,
            "attempts": self.attempts,
            "source": self.source.model_dump() if self.source else None,
            "dlq": {"topic": self.record.topic, "partition": self.record.partition, "offset": self.record.offset},
            "time": self.time.isoformat() if self.time else None,
        }


def _id_of(record: Record) -> str:
    """The tombstone id: the key, else the value's (a record without either shows as empty)."""
    if record.key:
        return record.key.decode(errors="replace")
    try:
        document = json.loads(record.value or b"")
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        return document["id"]
    return ""


@dataclass(frozen=True)
class LetterFilter:
    error_class: str | None = None
    id_prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __call__(self, letter: Letter) -> bool:
        if self.error_class is not None and letter.error_class != self.error_class:
            return False
        if self.id_prefix is not None and not letter.id.startswith(self.id_prefix):
            return False
        if self.since is not None and (letter.time is None or letter.time < self.since):
            return False
        if self.until is not None and (letter.time is None or letter.time >= self.until):
            return False
        return True


def dead_letters(
    settings: PipelineSettings, keep: Callable[[Letter], bool], progress: Callable[[int, int], None] | None = None
) -> list[Letter]:
    """The letters of the DLQ that ``keep`` keeps, oldest first per partition."""
    return [letter for letter in map(Letter.of, read_topic(settings, settings.topic_dlq, progress)) if keep(letter)]


@dataclass
class ReplayPlan:
    """What a replay does: ``replay`` each letter as its next generation, ``kept`` the letters the
    loop guard leaves in the DLQ, ``superseded`` older letters of a tombstone replayed since."""

    replay: list[Letter] = field(default_factory=list)
    kept: list[Letter] = field(default_factory=list)
    superseded: list[Letter] = field(default_factory=list)


def plan_replay(letters: Iterable[Letter], max_replays: int) -> ReplayPlan:
    """The newest letter of each tombstone (highest generation, then latest in the DLQ) is the
    one to replay; a tombstone replayed ``max_replays`` times already is kept."""
    newest: dict[str, Letter] = {}
    plan = ReplayPlan()
    for letter in letters:
        if not letter.id:
            plan.kept.append(letter)  # no id to run it under (an invalid record without key or id)
            continue
        current = newest.get(letter.id)
        if current is None or (letter.generation, letter.record.offset) > (current.generation, current.record.offset):
            if current is not None:
                plan.superseded.append(current)
            newest[letter.id] = letter
        else:
            plan.superseded.append(letter)
    for letter in newest.values():
        (plan.replay if letter.generation < max_replays else plan.kept).append(letter)
    return plan


def kept_reason(letter: Letter, max_replays: int) -> str:
    if not letter.id:
        return "no tombstone id (neither a key nor an id in the value)"
    return f"replayed {letter.generation} times already (DLQ_MAX_REPLAYS={max_replays})"


@dataclass
class ReplayReport:
    replayed: int = 0
    failed: list[str] = field(default_factory=list)


def replay(
    settings: PipelineSettings, letters: list[Letter], progress: Callable[[int], None] | None = None
) -> ReplayReport:
    """Put each letter's original key and value back on the tombstones topic, as its next
    generation; returns once the broker acknowledged (or refused) every one."""
    report = ReplayReport()
    producer = create_client(Producer, producer_config(settings, log_level=3))

    def delivered(error: KafkaError | None, _message: object, letter: Letter) -> None:
        if error is None:
            report.replayed += 1
        else:
            report.failed.append(f"{letter.id} ({letter.record.position}): {describe(error)}")
        if progress is not None:
            progress(1)

    for letter in letters:
        headers = [
            (GENERATION_HEADER, str(letter.generation + 1).encode()),
            (REPLAYED_FROM_HEADER, letter.record.position.encode()),
        ]
        while True:
            try:
                producer.produce(
                    settings.topic_tombstones,
                    key=letter.record.key,
                    value=letter.record.value,
                    headers=headers,
                    on_delivery=lambda error, message, letter=letter: delivered(error, message, letter),
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        report.failed.append(f"{remaining} records not acknowledged within 30s")
    return report
