"""The processor's next release, for the rolling-upgrade test: version 2 of the workflow beside
version 1, new workflows starting on version 2. Run as ``python -m tests.support.next_release``.

Version 2 adds a first step, so its step ids differ from version 1's: a version 1 workflow
replayed on version 2 code would go wrong, which is what the test would notice."""

from __future__ import annotations

import json
import os

from resonate.context import Context

from tombstone_processor import workflow
from tombstone_processor.cli import main
from tombstone_processor.workflow import Job, Outcome, cleanup_tombstone

#: Each version 2 workflow appends its id here (VERSION_LOG_PATH), once per execution of the step.
VERSION_LOG = "VERSION_LOG_PATH"


async def cleanup_tombstone_v2(ctx: Context, job: Job) -> Outcome:
    await ctx.run(record_version, job.id)
    return await cleanup_tombstone(ctx, job)


async def record_version(_: Context, tombstone_id: str) -> None:
    with open(os.environ[VERSION_LOG], "a") as log:
        log.write(json.dumps({"id": tombstone_id, "version": 2, "pid": os.getpid()}) + "\n")


if __name__ == "__main__":
    # Only in the next release's own process: importing this module (the test reads VERSION_LOG)
    # must not add version 2 to the test process's workflows, or every processor a later test
    # runs in-process starts its workflows on version 2.
    workflow.VERSIONS[2] = cleanup_tombstone_v2
    main()
