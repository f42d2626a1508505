"""The contract of ``tombstone_processor.sdk``, the one package that uses resonate-sdk's internals
(its docstring lists each workaround): the dependency is pinned to the version they were read
from, and these tests fail when an upgrade moves what they override or read."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

from resonate.connections import LocalConnection, SSEConnection
from resonate.resonate import Resonate

from tombstone_processor.sdk.stopping import finish_running_steps

PINNED = "0.8.1"


def test_the_sdk_is_the_version_whose_internals_the_processor_uses():
    assert version("resonate-sdk") == PINNED, (
        "resonate-sdk changed: re-read Resonate.stop() and the attributes finish_running_steps "
        "uses, then update PINNED and the pin in services/processor/pyproject.toml"
    )


async def test_the_internals_finish_running_steps_reads_are_there():
    resonate = Resonate(network=LocalConnection(group="unit"), autostart=False)
    assert isinstance(resonate._connections, list)
    assert isinstance(resonate._runtime.bg_tasks, set)
    assert inspect.iscoroutinefunction(SSEConnection.stop)
    # Resonate.stop() still closes the connections before it joins the running jobs: the reason
    # finish_running_steps exists at all.
    source = inspect.getsource(Resonate.stop)
    assert source.index("conn.stop()") < source.index("bg_tasks")
    assert await asyncio.wait_for(finish_running_steps(resonate, 1.0), 5)


async def test_aioproducer_still_refuses_headers():
    """Why AsyncProducer is ours, not confluent-kafka's AIOProducer (README, "How the processor
    works"): every record the processor writes carries trace headers, which AIOProducer 2.16.1
    refuses. When this fails, AIOProducer takes headers: measure it again
    (``python -m bench.aio_producer``) and reconsider."""
    import pytest
    from confluent_kafka.aio import AIOProducer

    producer = AIOProducer({"bootstrap.servers": "127.0.0.1:9"}, buffer_timeout=0)
    try:
        with pytest.raises(NotImplementedError, match="Headers are not supported"):
            await producer.produce("t", value=b"x", headers=[("traceparent", b"00-")])
    finally:
        await producer.close()


def test_what_the_event_stream_overrides_is_there():
    from resonate.connections.sse import SSEConnection as SdkStream

    from tombstone_processor.sdk.event_stream import EventStream

    for name in ("_ensure_session", "_read_stream", "_sse_loop"):
        assert callable(getattr(SdkStream, name, None)), f"SSEConnection.{name} moved: re-read event_stream.py"
        assert name in vars(EventStream)
    # the session it replaces: aiohttp's defaults, a 300 s total timeout among them
    assert "aiohttp.ClientSession()" in inspect.getsource(SdkStream._ensure_session)


def test_what_the_heartbeat_and_the_token_check_build_on_is_there():
    from resonate.connections import HttpConnection
    from resonate.ids import origin_of
    from resonate.send import Sender

    assert inspect.iscoroutinefunction(Sender.task_heartbeat)
    assert list(inspect.signature(Sender.task_heartbeat).parameters)[1:] == ["pid", "tasks"]
    assert origin_of("a:1.2") == "a"  # the server's origin rule the heartbeat groups by
    assert inspect.iscoroutinefunction(HttpConnection.send)
    assert list(inspect.signature(HttpConnection.send).parameters)[1:3] == ["req", "headers"]

