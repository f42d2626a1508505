"""The processor's event stream (event_stream.py): no total timeout, a silent stream given up
after idle_seconds, and a loop that is started again whatever ended it. Against a real server:
tests/durable/test_never_wedges.py (a stream that vanishes)."""

from __future__ import annotations

import asyncio

import pytest
from resonate.connections import SSEConnection

from tombstone_processor.sdk import event_stream
from tombstone_processor.sdk.event_stream import EventStream


def stream() -> EventStream:
    return EventStream("http://127.0.0.1:1", pid="p", group="g", auth=None, idle_seconds=7)


async def test_the_session_has_no_total_timeout_and_gives_up_on_silence():
    source = stream()
    session = source._ensure_session()
    try:
        # aiohttp's default total of 300 s ended resonate-sdk 0.8.1's stream for good
        assert session.timeout.total is None
        assert session.timeout.sock_read == 7
    finally:
        await session.close()


async def test_a_loop_that_ends_on_an_error_is_started_again(monkeypatch):
    monkeypatch.setattr(event_stream, "RESTART_DELAY_SECONDS", 0)
    calls = []
    again = asyncio.Event()

    async def sdk_loop(self):
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError  # as aiohttp's total timeout ends the SDK's loop
        again.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(SSEConnection, "_sse_loop", sdk_loop)
    source = stream()
    await source.start()
    try:
        await asyncio.wait_for(again.wait(), 5)
    finally:
        await source.stop()
    assert len(calls) == 2 and source.restarts == 1


async def test_a_stopped_stream_is_not_started_again(monkeypatch):
    monkeypatch.setattr(event_stream, "RESTART_DELAY_SECONDS", 0)
    calls = []

    async def sdk_loop(self):
        calls.append(1)
        self._running = False  # stop() while the loop ran: it returns
    monkeypatch.setattr(SSEConnection, "_sse_loop", sdk_loop)
    source = stream()
    await source.start()
    await asyncio.wait_for(source._sse_handle, 5)
    assert calls == [1] and source.restarts == 0


@pytest.mark.parametrize("error", [TimeoutError(), RuntimeError("boom")])
async def test_the_restart_is_logged_with_the_error(monkeypatch, error):
    monkeypatch.setattr(event_stream, "RESTART_DELAY_SECONDS", 0)
    logged = []
    monkeypatch.setattr(event_stream.log, "warning", lambda event, **kw: logged.append((event, kw)))
    raised = []

    async def sdk_loop(self):
        if not raised:
            raised.append(1)
            raise error
        self._running = False
    monkeypatch.setattr(SSEConnection, "_sse_loop", sdk_loop)
    source = stream()
    await source.start()
    await asyncio.wait_for(source._sse_handle, 5)
    ((event, fields),) = logged
    assert "reconnecting" in event and type(error).__name__ in fields["error"] and fields["restarts"] == 1
