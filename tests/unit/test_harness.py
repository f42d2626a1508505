"""The pure pieces of the shared harness: percentiles and /proc parsing."""

from __future__ import annotations

import os

import pytest

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
