"""Local or durable: decided once, from ``RESONATE_URL``; every difference between the two is a
field here, so that no other part asks which mode it runs in.

========================  =======================================  ====================================
                          durable (``RESONATE_URL`` set)            local (unset)
========================  =======================================  ====================================
an input offset settles   once the workflow's promise exists        once the workflow ended
the sleep between         a deadline-only promise, settled by the   the SDK's timer (the in-process
batches                   server (``sleep_until_deadline``)         store settles no deadline-only one)
at start                  the server is checked (server_check.py)   nothing to check
on SIGTERM                running steps finish, the rest resumes    workflows finish within the grace
                          on another processor after its lease      period; the rest is redelivered
========================  =======================================  ====================================
"""

from __future__ import annotations

from dataclasses import dataclass

from tombstone_processor.settings import ResonateSettings


@dataclass(frozen=True)
class Mode:
    name: str
    #: An input offset (and a dead letter's) waits for the workflow's end, not for its hand-off.
    offset_waits_for_workflow: bool
    #: Sleeps are deadline-only promises that the server settles.
    deadline_sleeps: bool
    #: The server is checked at start, and steps running at a stop are let finish.
    has_server: bool

    @classmethod
    def of(cls, settings: ResonateSettings) -> Mode:
        return DURABLE if settings.resonate_url is not None else LOCAL

    @property
    def drains_on_shutdown(self) -> bool:
        """Nothing of a workflow survives the process: finish what fits in the grace period."""
        return not self.has_server


DURABLE = Mode("durable", offset_waits_for_workflow=False, deadline_sleeps=True, has_server=True)
LOCAL = Mode("local", offset_waits_for_workflow=True, deadline_sleeps=False, has_server=False)
