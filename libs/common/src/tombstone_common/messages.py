"""The records on the pipeline's topics, and how raw Kafka bytes become them.

``tombstones``: key = id, value = ``{"id": "<id>", ...}`` (or the original example's bare JSON
string ``"<id>"``). Optional fields fix the amount of work for tests and benchmarks.
``processed``: one :class:`ProcessedRecord` per tombstone, keyed by id.
``tombstones.dlq``: the original key and value, untouched, with :func:`dead_letter_headers`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

# Resonate derives child promise ids as "<id>:<n>", so ":" may not appear in an id; the
# charset below also keeps ids safe in URLs, file names and log lines.
TOMBSTONE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_ID_LENGTH = 128

TombstoneId = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=TOMBSTONE_ID_PATTERN)
]


class InvalidRecord(Exception):
    """A record that can never be processed; it goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tombstone(BaseModel):
    """One unit of work: delete everything that belongs to ``id``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: TombstoneId
    batches: StrictInt | None = Field(
        None, ge=1, le=10_000, description="Fixed number of delete batches (deterministic mode)."
    )
    error_rate: StrictFloat | StrictInt | None = Field(
        None, ge=0, le=1, description="Per-attempt failure probability for this tombstone."
    )

    def to_value(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def parse_tombstone(key: bytes | None, value: bytes | None, max_bytes: int) -> Tombstone:
    """Decode and validate one ``tombstones`` record, or raise :class:`InvalidRecord`."""
    if not value:
        raise InvalidRecord("empty value")
    if len(value) > max_bytes:
        raise InvalidRecord(f"value is {len(value)} bytes, more than the {max_bytes} allowed")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("value is not UTF-8") from None
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"value is not JSON: {exc.msg} at position {exc.pos}") from None
    if isinstance(document, str):
        document = {"id": document}
    if not isinstance(document, dict):
        raise InvalidRecord(f"value is a JSON {type(document).__name__}, not an object or string")
    try:
        tombstone = Tombstone.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "value"
        raise InvalidRecord(f"{field}: {first['msg']}") from None
    if key is not None and key != tombstone.id.encode():
        raise InvalidRecord("record key does not match the tombstone id")
    return tombstone


#: Header of a ``tombstones`` record that ``record-admin dlq replay`` put back: the generation it
#: runs as (absent = 0, the first run). Each generation is a workflow of its own.
GENERATION_HEADER = "tombstone.generation"
#: Header of a replayed record: the dead letter it came from, ``<topic>/<partition>@<offset>``.
REPLAYED_FROM_HEADER = "tombstone.replayed-from"
MAX_GENERATION = 1000

#: A record's headers, as confluent-kafka gives them (a value may be None) and takes them.
Headers = Sequence[tuple[str, bytes | None]]


def generation_of(headers: Headers | None) -> int:
    """The generation a ``tombstones`` record asks for, or :class:`InvalidRecord`."""
    for name, value in headers or ():
        if name == GENERATION_HEADER:
            text = (value or b"").decode("ascii", errors="replace")
            if not text.isdigit() or int(text) > MAX_GENERATION:
                raise InvalidRecord(f"header {GENERATION_HEADER} is {text!r}, not a generation 0..{MAX_GENERATION}")
            return int(text)
    return 0


class SourcePosition(BaseModel):
    """Where a tombstone was read from, so the output shows the reordering."""

    topic: str
    partition: int
    offset: int


class ProcessedRecord(BaseModel):
    """The completion record published to ``processed``, one per tombstone."""

    id: str
    source: SourcePosition
    batches: int = Field(description="Delete batches that succeeded.")
    attempts: int = Field(description="Delete attempts, failures included.")
    started_at: datetime
    completed_at: datetime
    processor: str = Field(description="Pod or host name of the processor that finished it.")
    status: Literal["processed", "cancelled"] = Field(
        "processed", description="`cancelled`: stopped by `record-admin cancel` before its last batch."
    )
    generation: int = Field(0, description="0 for the first run; n for the n-th replay of its dead letter.")

    def to_value(self) -> bytes:
        return self.model_dump_json().encode()


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeadLetterHeader:
    """Header names on ``tombstones.dlq`` records."""

    REASON = "dlq.reason"
    ERROR_CLASS = "dlq.error.class"
    SOURCE_TOPIC = "dlq.source.topic"
    SOURCE_PARTITION = "dlq.source.partition"
    SOURCE_OFFSET = "dlq.source.offset"
    ATTEMPTS = "dlq.attempts"
    GENERATION = "dlq.generation"


def dead_letter_headers(
    reason: str,
    error_class: str,
    source: SourcePosition,
    attempts: int | None = None,
    generation: int = 0,
) -> list[tuple[str, bytes]]:
    headers = [
        (DeadLetterHeader.REASON, reason.encode()),
        (DeadLetterHeader.ERROR_CLASS, error_class.encode()),
        (DeadLetterHeader.SOURCE_TOPIC, source.topic.encode()),
        (DeadLetterHeader.SOURCE_PARTITION, str(source.partition).encode()),
        (DeadLetterHeader.SOURCE_OFFSET, str(source.offset).encode()),
        (DeadLetterHeader.GENERATION, str(generation).encode()),
    ]
    if attempts is not None:
        headers.append((DeadLetterHeader.ATTEMPTS, str(attempts).encode()))
    return headers
