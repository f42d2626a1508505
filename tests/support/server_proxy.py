"""A fault-injecting HTTP proxy in front of a real Resonate server.

Requests (``POST /`` envelopes) and the server's push streams pass through unchanged unless a
fault says otherwise: answer step-promise creates as a server from before the ``<id>:<lineage>``
ids does (its own 400 body), answer chosen request kinds with a 5xx or a 400, delay them, or
reset the connection; or make the push streams open now vanish as a lost node's do (the server
sees them closed, the processor sees them open and silent). It runs on its own event loop in a
thread, so blocking tests can use it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from devstack.procs import free_port

#: What a server from before resonate PR #1127 answers a child promise create with.
OLD_SERVER_REFUSAL = "Promise ID must be prefixed by resonate:origin"


@dataclass
class Fault:
    """Applies to requests of ``kind`` (``task.create``, ``task.fence``, …) whose promise id
    contains ``id_contains``; ``times`` of them (None = all)."""

    kind: str
    status: int | None = None  # answer with this status and ``message``
    message: str = "injected"
    delay: float = 0.0  # seconds before forwarding (or answering)
    reset: bool = False  # drop the connection without an answer
    id_contains: str = ""
    times: int | None = None


@dataclass
class ServerProxy:
    upstream: str
    port: int = field(default_factory=free_port)
    faults: list[Fault] = field(default_factory=list)
    refuse_step_creates: bool = False  # behave like a server without `<id>:<lineage>` ids
    seen: Counter = field(default_factory=Counter)  # (kind, what happened) -> count
    streams: int = 0  # push streams opened so far
    _vanished_before: int = 0  # streams numbered below this have vanished
    _upstreams: dict = field(default_factory=dict)  # open push stream number -> its upstream response

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ── lifecycle ───────────────────────────────────────────────────────────

    def start(self) -> ServerProxy:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ServerProxy:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        started.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._stream_open = asyncio.Event()  # set while a push stream is open
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that closes its connection cancels its handler, which closes the upstream one:
        # the server sees the close at once, as it does without a proxy (a push stream the client
        # gave up on must not stay registered on the server, taking the messages meant for it).
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        # requests in flight (the push streams never end by themselves) are cut, not awaited
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await self._session.close()
        await self._runner.cleanup()

    def vanish_streams(self, deadline: float = 10.0) -> int:
        """The push streams open now vanish: the server's side is closed, as when the server goes
        with its node; the processor's stays open and hears nothing more, as through a link that
        went down (no FIN, no RST). Streams opened afterwards pass. When none is open (a client
        between two streams), waits up to ``deadline`` for the next. Returns how many vanished."""
        return asyncio.run_coroutine_threadsafe(self._vanish(deadline), self._loop).result(deadline + 10)

    async def _vanish(self, deadline: float) -> int:  # on the proxy's loop, beside the streams it ends
        await asyncio.wait_for(self._stream_open.wait(), deadline)
        self._vanished_before = self.streams
        for upstream in self._upstreams.values():
            upstream.close()
        return len(self._upstreams)

    # ── requests ────────────────────────────────────────────────────────────

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/":
            body = await request.read()
            envelope = json.loads(body)
            answer = await self._fault(envelope, request)
            if answer is not None:
                return answer
            return await self._forward(request, body)
        return await self._stream(request)

    async def _fault(self, envelope: dict, request: web.Request) -> web.StreamResponse | None:
        kind = envelope.get("kind", "")
        promise_id = _promise_id(envelope)
        if self.refuse_step_creates and kind == "task.fence" and ":" in promise_id:
            self.seen[(kind, "refused step")] += 1
            return _answer(envelope, 400, OLD_SERVER_REFUSAL)
        for fault in self.faults:
            if fault.kind != kind or fault.id_contains not in promise_id or fault.times == 0:
                continue
            if fault.times is not None:
                fault.times -= 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                self.seen[(kind, "reset")] += 1
                request.transport.close()
                raise asyncio.CancelledError
            if fault.status is not None:
                self.seen[(kind, fault.status)] += 1
                return _answer(envelope, fault.status, fault.message)
        self.seen[(kind, "forwarded")] += 1
        return None

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        async with self._session.post(
            self.upstream + "/", data=body, headers=_passed(request.headers)
        ) as upstream:
            return web.Response(body=await upstream.read(), status=upstream.status, headers=_passed(upstream.headers))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Everything else (the push stream, /ready, /health), streamed through as it comes."""
        push = request.path.startswith("/poll/")
        number = self.streams
        self.streams += push
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=_passed(request.headers), data=await request.read()
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, headers=_passed(upstream.headers))
            await response.prepare(request)
            if push:
                self._upstreams[number] = upstream
                self._stream_open.set()
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except aiohttp.ClientError:
                if not (push and number < self._vanished_before):
                    raise
            finally:
                if push:
                    self._upstreams.pop(number, None)
                    if not self._upstreams:
                        self._stream_open.clear()
        if push and number < self._vanished_before:
            self.seen[("stream", "vanished")] += 1
            await asyncio.Event().wait()  # silent until the client gives up (or the proxy stops)
        await response.write_eof()
        return response


def _promise_id(envelope: dict) -> str:
    """The promise a request creates: ``data.action.data.id`` (task.create/fence) or ``data.id``."""
    data = envelope.get("data") or {}
    action = data.get("action") if isinstance(data, dict) else None
    if isinstance(action, dict):
        return str((action.get("data") or {}).get("id", ""))
    return str(data.get("id", "")) if isinstance(data, dict) else ""


def _answer(envelope: dict, status: int, message: str) -> web.Response:
    """A response envelope as the server writes it: kind and correlation id echoed, the error text
    as data."""
    head = envelope.get("head") or {}
    body = {"kind": envelope.get("kind"), "head": {"corrId": head.get("corrId", ""), "status": status}, "data": message}
    return web.json_response(body, status=status)


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


def _passed(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
