"""The processor's event stream from the Resonate server: the SDK's, kept alive.

The server pushes on one long-lived ``GET /poll/{group}/{pid}`` what the processor waits for:
the tasks to run and the notifications that a promise settled (a workflow's sleep ending among
them). resonate-sdk 0.8.1's ``SSEConnection`` loses it for good in two ways:

- it reads through an aiohttp session with aiohttp's default 300 s *total* timeout, so every
  stream ends 300 s after it connected, with a ``TimeoutError`` its reconnect loop does not catch:
  the loop ends, silently, and the processor hears nothing more. Its sleeping workflows then
  wake only at the next listener refresh (``RESONATE_LISTENER_REFRESH_SECONDS``, 600 s);
- a server that goes away without closing the connection (its node lost: no FIN, no RST) leaves
  the stream open and silent, until that same timeout.

``EventStream`` is the SDK's connection with a session that has no total timeout and gives up
on a stream silent for ``idle_seconds`` (the server sends nothing while it has nothing to say, so
an idle stream is reconnected every ``idle_seconds``: one request), and a loop that is started
again if it ever ends while the processor runs.
"""

from __future__ import annotations

import asyncio

import aiohttp
from resonate.connections import SSEConnection

from tombstone_common.logs import get_logger

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
RESTART_DELAY_SECONDS = 1.0


class EventStream(SSEConnection):
    def __init__(self, url: str, *, pid: str, group: str, auth: str | None, idle_seconds: float) -> None:
        super().__init__(url=url, pid=pid, group=group, auth=auth)
        self._idle_seconds = idle_seconds
        self.restarts = 0  # times the SDK's loop ended and was started again

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._stopped:
                raise RuntimeError("source has been stopped")
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=self._idle_seconds
            )
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def _read_stream(self, resp: aiohttp.ClientResponse) -> None:
        try:
            await super()._read_stream(resp)
        except aiohttp.SocketTimeoutError:
            pass  # silent for idle_seconds: ends like a stream the server closed, and is reconnected

    async def _sse_loop(self) -> None:
        while self._running:
            try:
                await super()._sse_loop()  # returns only once stopped
            except Exception as exc:  # noqa: BLE001 - whatever ended it, the stream must go on
                self.restarts += 1
                log.warning(
                    "Resonate event stream ended; reconnecting",
                    error=f"{type(exc).__name__}: {exc}",
                    restarts=self.restarts,
                )
                await asyncio.sleep(RESTART_DELAY_SECONDS)
