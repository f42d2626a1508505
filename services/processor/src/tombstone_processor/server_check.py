"""Proving, before consuming, that the Resonate server accepts what this SDK sends.

A server from before the ``<id>:<lineage>`` promise ids (resonate-sdk 0.8's child ids) accepts the
workflow's root promise but refuses every step with ``400``; a processor against it would commit
offsets for workflows that can never run. And the workflow sleeps on promises that have only a
deadline, which the server must settle when it passes, or every workflow would sleep forever. So
at start the processor runs one probe workflow with one step and one such sleep under a reserved
id: a refusal, or a sleep that does not end, stops the process (exit 2, one line); a server that
is merely away is waited for (``/readyz`` says so meanwhile).

A server that refuses this processor's token (401: none, not signed by the server's key, expired,
a wrong issuer or audience; 403: valid, but not for these ids) stops it too, at start or whenever
it happens later (exit 2, one line naming the cause): every request would be refused the same
way, and none of it is the fault of a tombstone, so none is retried nor dead-lettered for it. The
records not handed off yet stay uncommitted and come again after a restart, which also reads
RESONATE_TOKEN again. The token itself is never written anywhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from resonate.context import Context
from resonate.error import PlatformError
from resonate.resonate import Resonate

from tombstone_common.logs import get_logger
from tombstone_processor.failures import is_transient, reason
from tombstone_processor.retries import retrying
from tombstone_processor.sdk.connection import TOKEN_REFUSALS, TokenCheckedConnection, TokenRefused
from tombstone_processor.workflow import sleep_until_deadline

log = get_logger(__name__)

#: The one place the required server is named; the README and the chart's docs point here.
REQUIRED_SERVER = "a Resonate server that accepts `<id>:<lineage>` promise ids (release v0.9.8 does; unreleased builds between resonatehq/resonate#1119 and #1127 do not)"

#: Tombstone ids never contain ``@`` (nor do workflow ids, ids.py), so no workflow collides with a
#: probe; and no ``.`` or ``:``, which the SDK after 0.8.1 refuses in the ids it is given.
PROBE_PREFIX = "@server-check-"


class ServerRefused(Exception):
    """The server answered a request of the probe with a 4xx: it is not compatible."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__(f"{what}: {reason(error)}")
        self.what = what
        self.error = error


@dataclass
class ServerCheck:
    """The probe's channel back to the check: a step refusal cannot be awaited otherwise (the SDK
    releases the task and the server offers it again, forever)."""

    refusals: dict[str, asyncio.Future[BaseException]] = field(default_factory=dict)
    status: str = "server check has not run yet"
    #: The server's first 401 or 403 (see :class:`TokenCheckedConnection`); None until then.
    token_refused: int | None = None
    #: Called once, at that first refusal (the processor stops).
    on_token_refused: Callable[[int], None] = lambda status: None

    def refused(self, probe_id: str, error: BaseException) -> None:
        future = self.refusals.get(probe_id)
        if future is not None and not future.done():
            future.set_result(error)

    def refused_token(self, status: int) -> None:
        if self.token_refused is not None:
            return
        self.token_refused = status
        self.status = f"the Resonate server refused this processor's token ({status})"
        self.on_token_refused(status)


#: How long the probe's sleep (PROBE_SLEEP) may take to end: the server settles expired promises
#: about once a second.
PROBE_SLEEP = timedelta(milliseconds=100)
PROBE_SLEEP_LIMIT_SECONDS = 60.0


async def server_check_probe(ctx: Context) -> str:
    """The probe workflow: one step, as every tombstone workflow's first step, then a sleep as
    the workflow's (on a deadline-only promise)."""
    try:
        accepted = await ctx.run(_step_accepted)
        await sleep_until_deadline(ctx, PROBE_SLEEP)
        return accepted
    except PlatformError as exc:
        if not is_transient(exc.cause):
            ctx.get_dependency(ServerCheck).refused(ctx.info.id, exc.cause)
        raise


async def _step_accepted(_: Context) -> str:
    return "accepted"


async def check_server(resonate: Resonate, check: ServerCheck, url: str, refusals: int) -> None:
    """Return once a probe workflow completed; raise :class:`ServerRefused` on a refusal."""
    probe_id = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    step_refused: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    check.refusals[probe_id] = step_refused
    check.status = f"checking the Resonate server at {url}"
    try:
        try:
            async for attempt in retrying(refusals, "server check", url):
                with attempt:
                    handle = resonate.options(timeout=timedelta(minutes=5)).run(probe_id, server_check_probe)
                    await handle.id()
        except Exception as exc:
            raise ServerRefused("creating the probe workflow's promise", exc) from exc
        check.status = f"waiting for the probe workflow's step on the Resonate server at {url}"
        result = asyncio.ensure_future(handle.result())
        done, _ = await asyncio.wait(
            {result, step_refused}, timeout=PROBE_SLEEP_LIMIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if step_refused in done:
            result.cancel()
            raise ServerRefused("creating a step promise (`<id>:<lineage>` id)", step_refused.result())
        if not done:
            result.cancel()
            raise ServerRefused(
                "to settle a promise whose deadline passed (the workflow's durable sleep)",
                TimeoutError(f"still pending after {PROBE_SLEEP_LIMIT_SECONDS:.0f}s"),
            )
        result.result()
        check.status = ""
        log.info("Resonate server accepts this processor's workflows", url=url)
    finally:
        check.refusals.pop(probe_id, None)
        step_refused.cancel()


def token_refused_line(url: str, status: int, token_given: bool) -> str:
    """The processor's last words when the server refused its token (never the token itself)."""
    where = f"the Resonate server at {url}"
    if status == 403:
        return (
            f"{where} forbids this processor's requests (403 Forbidden): the token in RESONATE_TOKEN is "
            'valid but must carry the claim role "admin" (or prefix "", every id) - check RESONATE_TOKEN'
        )
    if not token_given:
        return f"{where} requires a token (401 Unauthorized) and RESONATE_TOKEN is not set - set RESONATE_TOKEN"
    return (
        f"{where} refused the token (401 Unauthorized: not signed by the server's key, expired, or "
        "without the issuer or audience it expects) - check RESONATE_TOKEN"
    )


def incompatible_server_line(url: str, refusal: ServerRefused) -> str:
    return (
        f"the Resonate server at {url} refused {refusal.what}: {reason(refusal.error)}; "
        f"this processor needs {REQUIRED_SERVER}"
    )
