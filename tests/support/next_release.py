"""The processor's next release, for the rolling-upgrade test: the next version of the workflow
(NEXT) beside the current ones, new workflows starting on it. Run as
``python -m tests.support.next_release``.

The next version adds a first step, so its step ids differ from the current version's: a current
workflow replayed on the next version's code would go wrong, which is what the test would notice."""

from __future__ import annotations

import json
import os

from resonate.context import Context

from tombstone_processor import workflow
from tombstone_processor.cli import main
from tombstone_processor.workflow import VERSIONS, Job, Outcome, cleanup_tombstone

#: Each next-version workflow appends its id here (VERSION_LOG_PATH), once per execution of the step.
VERSION_LOG = "VERSION_LOG_PATH"
NEXT = max(VERSIONS) + 1


async def cleanup_tombstone_next(ctx: Context, job: Job) -> Outcome:
    await ctx.run(record_version, job.id)
    return await cleanup_tombstone(ctx, job)


async def record_version(_: Context, tombstone_id: str) -> None:
    with open(os.environ[VERSION_LOG], "a") as log:
        log.write(json.dumps({"id": tombstone_id, "version": NEXT, "pid": os.getpid()}) + "\n")


if __name__ == "__main__":
    # Only in the next release's own process: importing this module (the test reads VERSION_LOG)
    # must not add the next version to the test process's workflows, or every processor a later
    # test runs in-process starts its workflows on it.
    workflow.VERSIONS[NEXT] = cleanup_tombstone_next
    main()
