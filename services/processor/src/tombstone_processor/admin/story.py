"""One tombstone's story: its records on the three topics and its workflows on the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from tombstone_common.messages import GENERATION_HEADER, REPLAYED_FROM_HEADER, ProcessedRecord
from tombstone_common.settings import PipelineSettings
from tombstone_processor.admin.letters import Letter
from tombstone_processor.admin.topics import Record, read_topic
from tombstone_processor.admin.workflows import WorkflowState

Progress = Callable[[int, int], None]  # records read, of how many (each topic in turn)


@dataclass(frozen=True)
class Produced:
    record: Record
    generation: int
    replayed_from: str | None


@dataclass(frozen=True)
class Published:
    record: Record
    processed: ProcessedRecord


@dataclass
class Story:
    id: str
    produced: list[Produced] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    workflows: list[WorkflowState] = field(default_factory=list)

    @property
    def known_generation(self) -> int:
        """The highest generation the topics show."""
        return max(
            [p.generation for p in self.produced]
            + [p.processed.generation for p in self.published]
            + [letter.generation for letter in self.letters]
            + [0]
        )

    @property
    def empty(self) -> bool:
        return not (self.produced or self.published or self.letters or self.workflows)


def read_records(settings: PipelineSettings, tombstone_id: str, progress: Progress | None = None) -> Story:
    """The tombstone's records on ``tombstones``, ``processed`` and the DLQ (read whole)."""
    key = tombstone_id.encode()
    story = Story(tombstone_id)

    def matching(topic: str) -> list[Record]:
        return [record for record in read_topic(settings, topic, progress) if record.key == key]

    for record in matching(settings.topic_tombstones):
        generation = record.header(GENERATION_HEADER)
        story.produced.append(
            Produced(record, int(generation) if generation and generation.isdigit() else 0, record.header(REPLAYED_FROM_HEADER))
        )
    for record in matching(settings.topic_processed):
        try:
            story.published.append(Published(record, ProcessedRecord.model_validate_json(record.value or b"")))
        except ValidationError:
            continue  # not one of ours: a processed record always validates
    story.letters = [Letter.of(record) for record in matching(settings.topic_dlq)]
    return story


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
