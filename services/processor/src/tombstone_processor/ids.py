"""Workflow ids: one reversible spelling of (tombstone id, generation).

A tombstone's first run is generation 0; each ``record-admin dlq replay`` of its dead letter runs
it again as the next generation, a workflow of its own (a finished workflow's id keeps its stored
result for good, so the same id would never run again).

Resonate derives step ids from the workflow id: ``<id>:<n>``, deeper ones ``<id>:<n>.<m>``. The
SDK after 0.8.1 therefore refuses ``.`` and ``:`` in the ids it is given, and tombstone ids may
contain ``.``. So the workflow id spells a tombstone id with ``~`` as its escape character
(``~`` is not in the tombstone id charset, and is safe in URLs):

====================  ==============  =====================================
tombstone id          generation      workflow id
====================  ==============  =====================================
``a-1``               0               ``a-1`` (most ids are unchanged)
``orders.2024.17``    0               ``orders~d2024~d17``
``a-1``               2               ``a-1~g2``
``orders.2024.17``    1               ``orders~d2024~d17~g1``
====================  ==============  =====================================

Workflows started by version 2 or earlier (before generations) have the tombstone id itself as
their id, dots included: they keep resuming under it, since a resumed workflow is found by the
id it was stored under, never recomputed.
"""

from __future__ import annotations

import re

ESCAPE = "~"
DOT = "~d"
GENERATION = "~g"

_WORKFLOW_ID = re.compile(r"^(?P<id>[A-Za-z0-9](?:[A-Za-z0-9_-]|~d)*)(?:~g(?P<generation>[1-9][0-9]*))?$")


def workflow_id(tombstone_id: str, generation: int = 0) -> str:
    if generation < 0:
        raise ValueError(f"generation {generation} is negative")
    if ESCAPE in tombstone_id:
        raise ValueError(f"tombstone id {tombstone_id!r} contains {ESCAPE!r}")
    spelled = tombstone_id.replace(".", DOT)
    return f"{spelled}{GENERATION}{generation}" if generation else spelled


def parse_workflow_id(workflow: str) -> tuple[str, int]:
    """``(tombstone id, generation)`` of a workflow id :func:`workflow_id` made; ``ValueError``
    for any other string."""
    match = _WORKFLOW_ID.match(workflow)
    if match is None:
        raise ValueError(f"{workflow!r} is not a workflow id")
    return match["id"].replace(DOT, "."), int(match["generation"] or 0)
