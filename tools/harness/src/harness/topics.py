"""A run's own topics on a real broker, and tombstones sent with the real producer code."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tombstone_common.kafka import wait_for_broker
from tombstone_common.messages import Tombstone
from tombstone_common.settings import PipelineSettings
from tombstone_producer.produce import DeliveryReport, produce
from tombstone_topic_init.topics import TopicInitSettings, ensure_topics


def as_fields(env: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in env.items()}


def create_topics(
    bootstrap: str, names: dict[str, str], partitions: int, replicas: int = 1, min_insync: int | None = None
) -> None:
    """Create the topics ``names`` spells (as the services' environment does) with ``partitions``,
    ``replicas`` and ``min_insync`` (min.insync.replicas), as setup-topics does."""
    settings = TopicInitSettings(
        kafka_bootstrap_servers=bootstrap, topic_partitions=partitions, topic_replication_factor=replicas,
        topic_min_insync_replicas=min_insync, _env_file=None, **as_fields(names),
    )
    outcomes = ensure_topics(wait_for_broker(settings, 30), settings)
    assert all(outcome.partitions == partitions for outcome in outcomes)


def send_tombstones(
    bootstrap: str,
    names: dict[str, str],
    tombstones: list[Tombstone],
    rate: float | None = None,
    producer: Producer | None = None,
) -> DeliveryReport:
    """Produce with the real producer code onto the run's tombstones topic; all delivered.
    ``producer``: a connected one to reuse (see :func:`tombstone_producer.produce.produce`)."""
    settings = PipelineSettings(
        kafka_bootstrap_servers=bootstrap, topic_tombstones=names["TOPIC_TOMBSTONES"], _env_file=None
    )
    report = produce(settings, tombstones, rate, producer=producer)
    assert report.delivered == len(tombstones) and not report.failed, report.failed[:3]
    return report


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    """Change a topic's configuration (``max_message_bytes="500"`` → ``max.message.bytes``) as an
    operator would with ``kafka-configs --alter``; returns once the broker applied it."""
    entries = [
        ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
