"""Percentiles of measured delays (nearest rank, no interpolation: every value was observed)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
