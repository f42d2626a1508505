"""Why the pipeline keeps its own AsyncProducer instead of confluent-kafka's AIOProducer: the
processor writes every record with W3C trace headers, and it awaits each record alone when load is
low. Run ``.venv/bin/python -m bench.aio_producer``: a broker of its own, then whether AIOProducer
takes headers, and the median time to the acknowledgement of one record sent at a time (20 each).
"""

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka.aio import AIOProducer
from confluent_kafka.admin import AdminClient, NewTopic
from devstack.kafka import KafkaBroker
from tombstone_common.kafka import AsyncProducer, producer_config
from tombstone_common.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent


async def lone_latency(send, n=20):
    out = []
    for i in range(n):
        started = time.perf_counter()
        await send(i)
        out.append((time.perf_counter() - started) * 1000)
    return statistics.median(out)


async def main(bootstrap):
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, _env_file=None)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("t", 1, 1)])["t"].result(30)
    ours = AsyncProducer(settings)
    aio = AIOProducer(producer_config(settings))
    await ours.send("t", b"warm")
    await (await aio.produce("t", value=b"warm"))
    try:
        await aio.produce("t", value=b"x", headers=[("traceparent", b"00-")])
        headers = "accepted"
    except NotImplementedError as exc:
        headers = f"NotImplementedError: {exc}"
    a = await lone_latency(lambda i: ours.send("t", b"x"))

    async def aio_send(i):
        return await (await aio.produce("t", value=b"x"))

    b = await lone_latency(aio_send)
    print(f"headers with AIOProducer: {headers}")
    print(f"one record at a time, median ms to acknowledgement over 20: AsyncProducer {a:.1f}, AIOProducer {b:.1f}")
    ours.close(5)
    await aio.close()


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="aio-producer-") as home:
        broker = KafkaBroker.on_free_ports(Path(home), REPO / ".cache")
        broker.start()
        try:
            asyncio.run(main(broker.bootstrap_servers))
        finally:
            broker.stop()


if __name__ == "__main__":
    run()
