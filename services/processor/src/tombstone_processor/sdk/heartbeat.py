"""Lease renewal that the Resonate server accepts when a processor runs many workflows.

resonate-sdk 0.8.1 renews every task this process holds in one ``task.heartbeat`` request, but
the server requires all tasks of one heartbeat to share an origin (one workflow), and rejects
the request otherwise (400 "All tasks must belong to the same origin"). With two or more
workflows executing at once, no lease would be extended: each would lapse after the TTL and be
handed to another processor *while still running here*. This adapter sends one heartbeat per
origin instead; the SDK's own heartbeat loop (timing, start/stop bookkeeping) is unchanged.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from resonate.ids import origin_of
from resonate.send import Sender, TaskRef


class HeartbeatPerOrigin:
    """A ``TaskHeartbeating`` sender that splits each heartbeat by workflow origin."""

    def __init__(self) -> None:
        self._sender: Sender | None = None

    def bind(self, sender: Sender) -> None:
        self._sender = sender

    async def task_heartbeat(self, pid: str, tasks: list[TaskRef]) -> None:
        if self._sender is None:
            raise RuntimeError("heartbeat sender not bound yet")
        by_origin: dict[str, list[TaskRef]] = defaultdict(list)
        for task in tasks:
            by_origin[origin_of(task.id)].append(task)
        results = await asyncio.gather(
            *(self._sender.task_heartbeat(pid, group) for group in by_origin.values()),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]
