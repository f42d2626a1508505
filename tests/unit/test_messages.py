import json

import pytest

from tombstone_common.messages import (
    DeadLetterHeader,
    InvalidRecord,
    ProcessedRecord,
    SourcePosition,
    Tombstone,
    dead_letter_headers,
    parse_tombstone,
)

MAX = 1024


def test_object_value_is_parsed_with_optional_work():
    tombstone = parse_tombstone(b"a-1", b'{"id": "a-1", "batches": 3, "error_rate": 0}', MAX)
    assert tombstone == Tombstone(id="a-1", batches=3, error_rate=0)


def test_bare_json_string_of_the_original_example_is_accepted():
    assert parse_tombstone(None, b'"abc.9"', MAX).id == "abc.9"


def test_unknown_fields_are_ignored():
    assert parse_tombstone(b"x", b'{"id": "x", "created_at": "now"}', MAX).id == "x"


BAD_RECORDS = {
    "empty": (b"k", b"", "empty value"),
    "missing": (b"k", None, "empty value"),
    "not utf-8": (None, b"\xff\xfe{", "not UTF-8"),
    "not json": (None, b"{id: 1", "not JSON"),
    "json array": (None, b'["a"]', "JSON list"),
    "json null": (None, b"null", "JSON NoneType"),
    "json number": (None, b"42", "JSON int"),
    "no id": (None, b'{"name": "x"}', "id: Field required"),
    "numeric id": (None, b'{"id": 7}', "id: Input should be a valid string"),
    "empty id": (None, b'{"id": ""}', "id: String should have at least 1 character"),
    "colon in id": (None, b'{"id": "a:b"}', "id: String should match pattern"),
    "space in id": (None, b'{"id": "a b"}', "id: String should match pattern"),
    "long id": (None, json.dumps({"id": "x" * 200}).encode(), "at most 128 characters"),
    "bad batches": (None, b'{"id": "a", "batches": 0}', "batches: Input should be greater"),
    "string batches": (None, b'{"id": "a", "batches": "3"}', "batches: Input should be a valid"),
    "error rate > 1": (None, b'{"id": "a", "error_rate": 2}', "error_rate: Input should be less"),
    "oversized": (None, json.dumps({"id": "a", "pad": "x" * MAX}).encode(), "more than the 1024"),
    "key mismatch": (b"other", b'{"id": "a"}', "key does not match"),
}


@pytest.mark.parametrize("key,value,reason", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_records_are_rejected_with_a_reason(key, value, reason):
    with pytest.raises(InvalidRecord) as caught:
        parse_tombstone(key, value, MAX)
    assert reason in caught.value.reason


def test_processed_record_round_trips_as_json():
    record = ProcessedRecord(
        id="a",
        source=SourcePosition(topic="t", partition=1, offset=5),
        batches=2,
        attempts=3,
        started_at="2026-01-01T00:00:00+00:00",
        completed_at="2026-01-01T00:00:05+00:00",
        processor="p",
    )
    data = json.loads(record.to_value())
    assert data["source"] == {"topic": "t", "partition": 1, "offset": 5}
    assert data["completed_at"] == "2026-01-01T00:00:05Z"
    assert ProcessedRecord.model_validate_json(record.to_value()) == record


def test_dead_letter_headers_carry_reason_and_position():
    headers = dict(dead_letter_headers("bad", "InvalidRecord", SourcePosition(topic="t", partition=2, offset=9), 4))
    assert headers[DeadLetterHeader.REASON] == b"bad"
    assert headers[DeadLetterHeader.SOURCE_PARTITION] == b"2"
    assert headers[DeadLetterHeader.SOURCE_OFFSET] == b"9"
    assert headers[DeadLetterHeader.ATTEMPTS] == b"4"
