"""The simulated deletion's ledger (``DELETE_LEDGER_PATH``), read back: one dict per attempt."""

from __future__ import annotations

import json
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


def held(ledger: list[dict], pid: int, at: float, completed_at: dict[str, float] | None = None) -> list[str]:
    """The workflows process ``pid`` held at ``at``: their last step by then ran there, and they
    had not completed by then (when ``completed_at`` says when each did)."""
    last: dict[str, dict] = {}
    for entry in sorted(ledger, key=lambda e: e["at"]):
        if entry["at"] <= at:
            last[entry["id"]] = entry
    completed_at = completed_at or {}
    return [tid for tid, entry in last.items()
            if entry["pid"] == pid and completed_at.get(tid, float("inf")) > at]


def resume_delays(
    ledger: list[dict], kill: Kill, completed_at: dict[str, float] | None = None
) -> dict[str, float | None]:
    """The workflows the killed process held (``held``), each with the time from the kill to its
    next step in another process; None while it has not resumed."""
    delays: dict[str, float | None] = {}
    for tombstone_id in held(ledger, kill.pid, kill.at, completed_at):
        after = [e["at"] for e in ledger if e["id"] == tombstone_id and e["at"] > kill.at and e["pid"] != kill.pid]
        delays[tombstone_id] = min(after) - kill.at if after else None
    return delays
