"""The floor: the pipeline's workflow shape on bare resonate-sdk — no Kafka, no tracing, no
validation, no metrics — against the same server, under the same concurrency bound.

One workflow per id: a delete step, then a publish step (both durable ``ctx.run`` steps that do
nothing), started and followed the way the processor's dispatcher does it (``resonate.run`` then
``handle.result()``), at most ``FLOOR_MAX_IN_FLIGHT`` at a time. Run as
``python -m bench.floor_client``; it writes one JSON object to ``BENCH_RESULT_FILE``: the
workflows, the seconds from the first start to the last result, and the CPU seconds over that
span of itself and of every process named in ``BENCH_WATCH_PIDS`` (``name=pid,…``), from /proc.
"""

# No ``from __future__ import annotations``, as in the processor's workflow module: resonate-sdk
# would evaluate the steps' string annotations on every ``ctx.run``.

import asyncio
import contextlib
import json
import os
import time
from datetime import timedelta
from pathlib import Path

from resonate.context import Context
from resonate.resonate import Resonate

from bench.profile import record
from harness.procfs import cpu_seconds

CONNECT_SECONDS = 1.0  # the SSE source connects in the background; let it, before timing


async def delete_batch(ctx: Context, tombstone_id: str, batch: int) -> bool:
    return True


async def publish_processed(ctx: Context, tombstone_id: str, batches: int) -> None:
    return None


async def cleanup_tombstone(ctx: Context, tombstone_id: str) -> int:
    await ctx.run(delete_batch, tombstone_id, 1)
    await ctx.run(publish_processed, tombstone_id, 1)
    return 1


async def run_all(resonate: Resonate, ids: list[str], bound: int) -> None:
    slots = asyncio.Semaphore(bound)

    async def one(tombstone_id: str) -> None:
        try:
            handle = resonate.run(tombstone_id, cleanup_tombstone, tombstone_id)
            await handle.id()  # the hand-off: the promise exists on the server
            await handle.result()
        finally:
            slots.release()

    tasks = []
    for tombstone_id in ids:
        await slots.acquire()
        tasks.append(asyncio.create_task(one(tombstone_id)))
    await asyncio.gather(*tasks)


async def main() -> None:
    count = int(os.environ["FLOOR_WORKFLOWS"])
    bound = int(os.environ["FLOOR_MAX_IN_FLIGHT"])
    prefix = os.environ["FLOOR_PREFIX"]
    warm_up = int(os.environ.get("FLOOR_WARM_UP", "20"))
    resonate = Resonate(
        url=os.environ["RESONATE_URL"],
        group=os.environ["RESONATE_GROUP"],
        ttl=timedelta(seconds=float(os.environ.get("RESONATE_TTL_SECONDS", "15"))),
        max_concurrent_tasks=bound,
        autostart=False,
    )
    resonate.register(cleanup_tombstone)
    resonate.start()
    await asyncio.sleep(CONNECT_SECONDS)
    await run_all(resonate, [f"{prefix}-warm-{n}" for n in range(warm_up)], bound)
    watched = {"client": os.getpid()} | {
        name: int(pid) for name, pid in (pair.split("=") for pair in os.environ["BENCH_WATCH_PIDS"].split(","))
    }
    profile = os.environ.get("BENCH_PROFILE_FILE")  # py-spy samples this process while it is measured
    with record(os.getpid(), Path(profile)) if profile else contextlib.nullcontext():
        before, started = {name: cpu_seconds(pid) for name, pid in watched.items()}, time.monotonic()
        await run_all(resonate, [f"{prefix}-{n:06d}" for n in range(count)], bound)
        seconds = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
    await resonate.stop()
    result = {"workflows": count, "seconds": seconds, "cpu_seconds": cpu}
    Path(os.environ["BENCH_RESULT_FILE"]).write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
