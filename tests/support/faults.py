"""What a fault run did, read back from the ledger and the processed topic."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from harness.ledger import Kill, resume_delays
from harness.stats import percentile
from tombstone_common.messages import ProcessedRecord


@dataclass
class Verdict:
    produced: int
    lost: list[str]
    duplicates: int
    duplicated_ids: list[str]
    redone_batches: list[tuple[str, int, int]]  # (id, batch, successful executions)
    unexplained_redos: list[tuple[str, int]]
    recoveries: dict[int, list[float]] = field(default_factory=dict)  # kill index -> resume delays

    def lines(self, kills: list[Kill]) -> list[str]:
        out = [
            f"produced={self.produced} lost={len(self.lost)} duplicate_processed={self.duplicates} "
            f"redone_batches={len(self.redone_batches)} unexplained_redos={len(self.unexplained_redos)}"
        ]
        for index, kill in enumerate(kills):
            delays = self.recoveries.get(index, [])
            if delays:
                out.append(
                    f"  {kill.how} pid {kill.pid}: {len(delays)} workflows resumed elsewhere; "
                    f"first after {min(delays):.2f}s, p50 {statistics.median(delays):.2f}s, max {max(delays):.2f}s"
                )
            else:
                out.append(f"  {kill.how} pid {kill.pid}: no workflow was in flight on it")
        every = [d for delays in self.recoveries.values() for d in delays]
        if every:
            out.append(f"  resume delay over all kills: p50 {percentile(every, 50):.2f}s p99 {percentile(every, 99):.2f}s")
        return out


def judge(ids: list[str], processed: list[tuple[str, bytes]], ledger: list[dict], kills: list[Kill]) -> Verdict:
    records = [ProcessedRecord.model_validate_json(value) for _, value in processed]
    seen = Counter(record.id for record in records)
    completed_at = {record.id: min(r.completed_at.timestamp() for r in records if r.id == record.id) for record in records}

    # A successful batch executed again is allowed only when the process that ran it first died
    # (killed or stopped) after running it: that is the step that was in flight at the kill.
    ended = {kill.pid: kill.at for kill in kills}
    executions: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for entry in ledger:
        if entry["ok"]:
            executions[(entry["id"], entry["batch"])].append(entry)
    redone, unexplained = [], []
    for key, runs in executions.items():
        if len(runs) > 1:
            redone.append((*key, len(runs)))
            first, *again = sorted(runs, key=lambda e: e["at"])
            death = ended.get(first["pid"])
            if len(again) > 1 or death is None or death < first["at"] or again[0]["at"] < death:
                unexplained.append(key)

    # Recovery: for each kill, how long the victim's unfinished workflows took to resume elsewhere.
    recoveries = {
        index: [d for d in resume_delays(ledger, kill, completed_at).values() if d is not None]
        for index, kill in enumerate(kills)
    }

    return Verdict(
        produced=len(ids),
        lost=[tid for tid in ids if tid not in seen],
        duplicates=sum(seen.values()) - len(seen),
        duplicated_ids=[tid for tid, n in seen.items() if n > 1],
        redone_batches=redone,
        unexplained_redos=unexplained,
        recoveries=recoveries,
    )
