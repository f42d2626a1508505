"""Workflow ids, generations, and which dead letters a replay puts back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from itertools import product

from tombstone_common.messages import (
    GENERATION_HEADER,
    MAX_GENERATION,
    DeadLetterHeader,
    InvalidRecord,
    SourcePosition,
    dead_letter_headers,
    generation_of,
)
from tombstone_processor.admin.letters import Letter, LetterFilter, kept_reason, plan_replay
from tombstone_processor.admin.topics import Record
from tombstone_processor.ids import parse_workflow_id, workflow_id


def next_sdk_accepts(root_id: str) -> bool:
    """The root id rule of resonate-sdk after 0.8.1 (``ids.validate_root_id``): not empty, no
    NUL, no ``.`` and no ``:``, both being separators of the ids it mints below a root."""
    return bool(root_id) and not any(sep in root_id for sep in ("\0", ".", ":"))


@pytest.mark.parametrize(
    "tombstone_id,generation,expected",
    [
        ("a-1", 0, "a-1"),
        ("orders.2024.17", 0, "orders~d2024~d17"),
        ("a-1", 2, "a-1~g2"),
        ("orders.2024.17", 1, "orders~d2024~d17~g1"),
        ("a.g1", 0, "a~dg1"),
        ("a_b.", 3, "a_b~d~g3"),
    ],
)
def test_workflow_ids_spell_id_and_generation_for_the_next_sdk(tombstone_id, generation, expected):
    assert workflow_id(tombstone_id, generation) == expected
    assert next_sdk_accepts(expected)
    assert parse_workflow_id(expected) == (tombstone_id, generation)


def test_every_short_id_and_generation_round_trips():
    """Every id of up to four characters over the charset's kinds (letter, digit, ``.``, ``-``,
    ``_``) that the id pattern allows, at several generations."""
    ids = {"".join(chars) for n in range(1, 5) for chars in product("a9.-_g", repeat=n) if chars[0] in "a9g"}
    spelled = {workflow_id(i, g) for i in ids for g in (0, 1, 7, MAX_GENERATION)}
    assert len(spelled) == len(ids) * 4  # no two pairs share an id
    for i, g in product(sorted(ids), (0, 1, 7, MAX_GENERATION)):
        assert next_sdk_accepts(workflow_id(i, g))
        assert parse_workflow_id(workflow_id(i, g)) == (i, g)


def test_distinct_pairs_never_share_a_workflow_id():
    pairs = [(i, g) for i in ("a", "a.g1", "a~", "a.", "ag1", "a.d") if "~" not in i for g in (0, 1, 10)]
    assert len({workflow_id(i, g) for i, g in pairs}) == len(pairs)


@pytest.mark.parametrize("bad", ["", "a~x", "a~g0", "a~g", "a~g1~g2", "~g1"])
def test_a_string_that_is_no_workflow_id_is_refused(bad):
    with pytest.raises(ValueError):
        parse_workflow_id(bad)


def test_the_generation_header():
    assert generation_of(None) == 0
    assert generation_of([("traceparent", b"x")]) == 0
    assert generation_of([(GENERATION_HEADER, b"3")]) == 3
    for bad in (b"-1", b"x", b"", str(MAX_GENERATION + 1).encode()):
        with pytest.raises(InvalidRecord, match=GENERATION_HEADER):
            generation_of([(GENERATION_HEADER, bad)])


def letter(tombstone_id: str, generation: int, offset: int, error_class: str = "DeleteFailed", key: bool = True) -> Letter:
    headers = dead_letter_headers("why", error_class, SourcePosition(topic="t", partition=0, offset=offset), 1, generation)
    record = Record(
        topic="t.dlq", partition=0, offset=offset, key=tombstone_id.encode() if key else None,
        value=f'{{"id": "{tombstone_id}"}}'.encode(), headers=tuple(headers),
        timestamp=datetime(2026, 12, 6, 12, offset, tzinfo=UTC),
    )
    return Letter.of(record)


def test_a_letter_reads_its_headers():
    read = letter("x.1", 2, 5)
    assert (read.id, read.generation, read.error_class, read.reason, read.attempts) == ("x.1", 2, "DeleteFailed", "why", 1)
    assert read.source == SourcePosition(topic="t", partition=0, offset=5)
    assert letter("from-value", 0, 1, key=False).id == "from-value"
    assert DeadLetterHeader.GENERATION in dict(read.record.headers)


def test_replay_takes_the_newest_letter_of_each_tombstone_and_keeps_those_at_the_guard():
    old, new, other, poison = letter("a", 0, 1), letter("a", 1, 2), letter("b", 0, 3), letter("c", 3, 4)
    plan = plan_replay([new, old, other, poison], max_replays=3)
    assert plan.replay == [new, other]
    assert plan.superseded == [old]
    assert plan.kept == [poison]
    assert kept_reason(poison, 3) == "replayed 3 times already (DLQ_MAX_REPLAYS=3)"
    assert plan_replay([old], max_replays=0).kept == [old]


def test_the_letter_filter():
    read = letter("acme-1", 0, 7, error_class="InvalidRecord")
    assert LetterFilter()(read)
    assert LetterFilter(error_class="InvalidRecord", id_prefix="acme")(read)
    assert not LetterFilter(error_class="DeleteFailed")(read)
    assert not LetterFilter(id_prefix="other")(read)
    assert LetterFilter(since=datetime(2026, 12, 6, 12, 7, tzinfo=UTC))(read)
    assert not LetterFilter(since=datetime(2026, 12, 6, 12, 8, tzinfo=UTC))(read)
    assert not LetterFilter(until=datetime(2026, 12, 6, 12, 7, tzinfo=UTC))(read)


def test_the_server_checks_probe_id_is_one_the_next_sdk_accepts():
    from tombstone_processor.server_check import PROBE_PREFIX

    assert next_sdk_accepts(f"{PROBE_PREFIX}{'0' * 32}")
    with pytest.raises(ValueError):  # and it cannot be taken for a workflow's id
        parse_workflow_id(f"{PROBE_PREFIX}{'0' * 32}")
