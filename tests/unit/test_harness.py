"""The pure pieces of the shared harness: percentiles, /proc parsing and the deletion ledger."""

from __future__ import annotations

import os

import pytest

from harness.ledger import Kill, held, resume_delays
from harness.procfs import CLOCK_TICKS, cpu_seconds, cpu_seconds_from_stat
from harness.stats import percentile


def test_percentile_is_an_observed_value_by_nearest_rank():
    values = [float(n) for n in range(1, 101)]  # 1 … 100
    assert percentile(values, 50) == 51.0  # round(0.5 × 99) = 50 → the 51st value
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_of_nothing_says_so():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_cpu_seconds_count_user_and_system_time_after_a_command_name_with_spaces():
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
    stat = "4242 (record processor) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 50 7 1 20 0 5 0 100 0"
    assert cpu_seconds_from_stat(stat, ticks=100) == pytest.approx(3.0)  # (250 + 50) / 100
    assert cpu_seconds_from_stat(stat.replace("(record processor)", "(a) b) c)"), ticks=100) == pytest.approx(3.0)


def test_cpu_seconds_of_this_process_grow_while_it_works():
    before = cpu_seconds(os.getpid())
    deadline = before + 3 / CLOCK_TICKS
    spins = 0
    while cpu_seconds(os.getpid()) < deadline:
        spins += 1
    assert cpu_seconds(os.getpid()) > before


def step(tid: str, batch: int, pid: int, at: float, ok: bool = True) -> dict:
    return {"id": tid, "batch": batch, "pid": pid, "at": at, "ok": ok}


def test_a_killed_process_held_the_workflows_whose_last_step_ran_there_and_had_not_completed():
    ledger = [
        step("a", 1, pid=1, at=1.0), step("a", 2, pid=2, at=5.0),  # resumed by 2, 3 s after the kill
        step("b", 1, pid=2, at=1.0), step("b", 2, pid=1, at=1.5, ok=False),  # a failed attempt is a step too
        step("c", 1, pid=2, at=1.0),  # process 2's
        step("d", 1, pid=1, at=1.0),  # completed before the kill
        step("e", 1, pid=1, at=3.0),  # after the kill: not held by it
    ]
    kill = Kill(2.0, 1, "SIGKILL")
    assert sorted(held(ledger, 1, 2.0, {"d": 1.2})) == ["a", "b"]
    assert sorted(held(ledger, 1, 2.0)) == ["a", "b", "d"]  # completion unknown
    assert resume_delays(ledger, kill, {"d": 1.2}) == {"a": 3.0, "b": None}
