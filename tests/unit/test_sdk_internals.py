"""The processor uses a few internals of resonate-sdk (see ``finish_running_steps`` in app.py and
the timer handling it relies on); the dependency is pinned to the version they were read from,
and this test fails when an upgrade moves them."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

from resonate.connections import LocalConnection, SSEConnection
from resonate.resonate import Resonate

from tombstone_processor.app import finish_running_steps

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
