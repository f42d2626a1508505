"""A tombstone's workflows as the Resonate server holds them, and cancelling one.

Every step of a workflow is a promise whose ``resonate:origin`` tag is the workflow's id: a
``delete_batch`` step resolves with its :class:`~tombstone_processor.simulation.BatchResult`, a
sleep (version 2 on) is a pending promise with nothing but a deadline. ``cancel`` resolves that
sleep with a cancel request, which wakes the workflow (version 3 on) into publishing its
``processed`` record as ``cancelled``. A workflow in the middle of a delete step is cancelled at
the sleep that follows it: ``cancel`` waits for it there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from resonate.error import ServerError
from resonate.resonate import Resonate
from resonate.types import PromiseRecord, Value

from tombstone_processor.ids import workflow_id
from tombstone_processor.settings import ResonateSettings
from tombstone_processor.workflow import CANCELLABLE_FROM, WORKFLOW, cancel_request

ORIGIN_TAG = "resonate:origin"
EXTERNAL_TAG = "resonate:external"
SEARCH_PAGE = 500


class ServerUnavailable(Exception):
    pass


class NotFound(Exception):
    pass


def client(settings: ResonateSettings) -> Resonate:
    """A client of the server's promises only: no worker, no event stream, no tasks."""
    token = settings.resonate_token.get_secret_value() if settings.resonate_token else None
    return Resonate(url=str(settings.resonate_url).rstrip("/"), token=token, sources=[], autostart=False)


@dataclass
class WorkflowState:
    """One generation's workflow: what its promises say."""

    id: str
    generation: int
    state: str  # pending, resolved, rejected, rejected_canceled, rejected_timedout
    version: int | None
    created_at: datetime | None
    settled_at: datetime | None
    outcome: dict | None  # the workflow's result once resolved
    batches: int = 0  # delete batches that succeeded
    attempts: int = 0  # their attempts, failures included
    deleting: bool = False  # a delete step is running (or being retried)
    sleeping_until: datetime | None = None
    sleep_id: str | None = None
    trace_parent: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "pending"

    @property
    def retries(self) -> int:
        return self.attempts - self.batches


def _time(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, UTC) if millis else None


async def _get(resonate: Resonate, promise_id: str) -> PromiseRecord | None:
    try:
        return await resonate.promises.get(promise_id)
    except Exception as exc:  # noqa: BLE001 (a 404 is "not there"; anything else, the server is not)
        if _status(exc) == 404:
            return None
        raise _unavailable(exc) from None


def _status(exc: BaseException) -> int | None:
    """The server's status for a request it answered, ``None`` for one it did not."""
    return exc.code if isinstance(exc, ServerError) else None


def _unavailable(exc: BaseException) -> ServerUnavailable:
    return ServerUnavailable(str(exc) if isinstance(exc, ServerError) else f"{type(exc).__name__}: {exc}")


async def _children(resonate: Resonate, workflow: str) -> list[PromiseRecord]:
    found: list[PromiseRecord] = []
    cursor: str | None = None
    while True:
        try:
            page = await resonate.promises.search(None, {ORIGIN_TAG: workflow}, SEARCH_PAGE, cursor)
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from None
        found.extend(p for p in page.promises if p.id != workflow)
        cursor = page.cursor
        if not cursor:
            return found


async def inspect(resonate: Resonate, workflow: str, generation: int) -> WorkflowState | None:
    """The state of workflow ``workflow``, or ``None`` when the server has no such workflow."""
    root = await _get(resonate, workflow)
    if root is None:
        return None
    param = root.param.data if isinstance(root.param.data, dict) else {}
    job = (param.get("args") or [{}])[0] if param.get("func") == WORKFLOW else {}
    trace = job.get("trace", {}).get("parent", {}) if isinstance(job, dict) else {}
    state = WorkflowState(
        id=workflow,
        generation=generation,
        state=root.state,
        version=param.get("version") if param.get("func") == WORKFLOW else None,
        created_at=_time(root.created_at),
        settled_at=_time(root.settled_at),
        outcome=root.value.data if root.state == "resolved" and isinstance(root.value.data, dict) else None,
        trace_parent=trace.get("traceparent") if isinstance(trace, dict) else None,
    )
    for child in await _children(resonate, workflow):
        value = child.value.data
        if child.state == "resolved" and isinstance(value, dict) and {"done", "attempts"} <= value.keys():
            state.batches += 1
            state.attempts += int(value["attempts"])
        elif child.state == "pending" and child.tags.get(EXTERNAL_TAG) == "true":
            # the latest sleep: the server settles an expired one within a second or so
            if state.sleeping_until is None or _time(child.timeout_at) > state.sleeping_until:
                state.sleeping_until, state.sleep_id = _time(child.timeout_at), child.id
        elif child.state == "pending" and child.tags.get("resonate:scope") == "local":
            state.deleting = True
    return state


async def generations(resonate: Resonate, tombstone_id: str, known: int = 0) -> list[WorkflowState]:
    """Every workflow of ``tombstone_id`` the server holds: generation 0 up, while they exist
    (at least up to ``known``, the highest generation seen on the topics), and the id of a
    version 1 or 2 workflow started before generations (the tombstone id itself)."""
    found: list[WorkflowState] = []
    generation = 0
    while True:
        state = await inspect(resonate, workflow_id(tombstone_id, generation), generation)
        if state is not None:
            found.append(state)
        elif generation >= known:
            break
        generation += 1
    if workflow_id(tombstone_id) != tombstone_id:
        legacy = await inspect(resonate, tombstone_id, 0)
        if legacy is not None:
            found.insert(0, legacy)
    return found


@dataclass
class Cancelled:
    workflow: WorkflowState
    waited: float = 0.0
    notes: list[str] = field(default_factory=list)


class CannotCancel(Exception):
    """Nothing was changed; the message says why."""


async def cancel(
    resonate: Resonate, tombstone_id: str, known: int, by: str, wait_seconds: float, poll_seconds: float = 0.5
) -> Cancelled:
    """Wake the tombstone's running workflow with a cancel request at its sleep, waiting up to
    ``wait_seconds`` for it to reach one; :class:`CannotCancel` if there is none to cancel."""
    found = await generations(resonate, tombstone_id, known)
    if not found:
        raise CannotCancel(f"no workflow of tombstone {tombstone_id} on the server: nothing to cancel")
    latest = found[-1]
    if not latest.running:
        raise CannotCancel(
            f"the workflow of tombstone {tombstone_id} (generation {latest.generation}) has ended "
            f"({latest.state}): nothing to cancel"
        )
    if latest.version is not None and latest.version < CANCELLABLE_FROM:
        raise CannotCancel(
            f"the workflow of tombstone {tombstone_id} runs version {latest.version}, which cannot be "
            f"cancelled (version {CANCELLABLE_FROM} on can): nothing changed"
        )
    started = time.monotonic()
    request = Value(data=cancel_request(by))
    while True:
        if latest.sleep_id is not None:
            try:
                settled = await resonate.promises.resolve(latest.sleep_id, request)
            except Exception as exc:  # noqa: BLE001: settled meanwhile (its deadline passed): look again
                if _status(exc) is None:
                    raise _unavailable(exc) from None
            else:
                # A sleep past its deadline that the server had not settled yet is settled as
                # timed out instead: the workflow deletes on, so look for its next sleep.
                if settled.state == "resolved":
                    return Cancelled(latest, time.monotonic() - started)
        if time.monotonic() - started >= wait_seconds:
            raise CannotCancel(
                f"the workflow of tombstone {tombstone_id} did not reach a sleep within {wait_seconds:.0f}s "
                f"(it is {'deleting' if latest.deleting else 'between steps'}): nothing changed; run cancel again"
            )
        await asyncio.sleep(poll_seconds)
        refreshed = await inspect(resonate, latest.id, latest.generation)
        if refreshed is None or not refreshed.running:
            raise CannotCancel(
                f"the workflow of tombstone {tombstone_id} ended before it could be cancelled"
                f" ({refreshed.state if refreshed else 'gone'}): nothing changed"
            )
        latest = refreshed
