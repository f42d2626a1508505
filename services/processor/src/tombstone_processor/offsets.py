"""Which offset of a partition is safe to commit.

An offset is *begun* when its message is taken from the consumer and *settled* once it no
longer needs the broker to keep it: handed off to a durable backend, completed (local mode), or
dead-lettered. The committable position is the lowest offset still open, or one past the
highest offset seen, so a commit never skips a message that is still open.
"""

from __future__ import annotations


class PartitionOffsets:
    def __init__(self) -> None:
        self._open: set[int] = set()
        self._next = -1  # one past the highest begun offset
        self._committed = -1

    def begin(self, offset: int) -> None:
        self._open.add(offset)
        self._next = max(self._next, offset + 1)

    def settle(self, offset: int) -> None:
        self._open.discard(offset)

    def committable(self) -> int | None:
        """The offset to commit now, or ``None`` if nothing new became safe."""
        position = min(self._open) if self._open else self._next
        if position <= self._committed:
            return None
        return position

    def mark_committed(self, position: int) -> None:
        self._committed = max(self._committed, position)
