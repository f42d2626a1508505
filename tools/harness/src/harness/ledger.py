"""The simulated deletion's ledger (``DELETE_LEDGER_PATH``), read back: one dict per attempt."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kill:
    at: float  # epoch seconds
    pid: int
    how: str  # "SIGKILL" or "SIGTERM"


def read_ledger(path: str | Path) -> list[dict]:
    """Every delete attempt recorded so far; empty while the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def resume_delays(
    ledger: list[dict], kill: Kill, completed_at: dict[str, float] | None = None
) -> dict[str, float | None]:
    """The workflows the killed process held (their last step before the kill ran there, and they
    had not completed by then), each with the time from the kill to its next step in another
    process; None while it has not resumed."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for entry in sorted(ledger, key=lambda e: e["at"]):
        by_id[entry["id"]].append(entry)
    delays: dict[str, float | None] = {}
    for tombstone_id, entries in by_id.items():
        before = [e for e in entries if e["at"] <= kill.at]
        if not before or before[-1]["pid"] != kill.pid:
            continue
        if completed_at is not None and completed_at.get(tombstone_id, float("inf")) <= kill.at:
            continue
        after = [e for e in entries if e["at"] > kill.at and e["pid"] != kill.pid]
        delays[tombstone_id] = after[0]["at"] - kill.at if after else None
    return delays
