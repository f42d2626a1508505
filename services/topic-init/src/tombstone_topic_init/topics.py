"""Which topics the pipeline needs, and creating the missing ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic
from pydantic import Field, model_validator

from tombstone_common.settings import PipelineSettings


class TopicInitSettings(PipelineSettings):
    topic_partitions: int = Field(6, ge=1, le=1000, description="Partitions per topic.")
    topic_replication_factor: int = Field(1, ge=1, le=10, description="Replicas per partition.")
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=10,
        description=(
            "min.insync.replicas of the created topics: how many replicas must have a record "
            "before the broker acknowledges it (every pipeline producer writes with acks=all). "
            "Unset = the broker's default."
        ),
    )
    broker_wait_seconds: float = Field(
        60,
        gt=0,
        description=(
            "How long setup-topics waits for the broker, and, when it has topics to create, "
            "for as many brokers as TOPIC_REPLICATION_FACTOR, before failing."
        ),
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> TopicInitSettings:
        insync, replicas = self.topic_min_insync_replicas, self.topic_replication_factor
        if insync is not None and insync > replicas:
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({insync}) exceeds TOPIC_REPLICATION_FACTOR ({replicas}): "
                "no write could ever be acknowledged"
            )
        return self


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(settings: TopicInitSettings) -> list[TopicSpec]:
    common = {}
    if settings.topic_min_insync_replicas is not None:
        common["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return [
        TopicSpec(settings.topic_tombstones, common),
        # Keyed by tombstone id and compacted: a rare duplicate completion record is a no-op
        # for anyone reading the latest value per id.
        TopicSpec(settings.topic_processed, {**common, "cleanup.policy": "compact"}),
        TopicSpec(settings.topic_dlq, common),
    ]


class TooFewBrokers(Exception):
    """The cluster has fewer brokers than the topics' replicas, and did not get more in time."""


def await_brokers(
    admin: AdminClient,
    needed: int,
    timeout: float,
    report: Callable[[int], None] = lambda count: None,
) -> int:
    """Wait until the cluster has ``needed`` brokers, calling ``report`` with each new count; the
    broker refuses a topic with more replicas than brokers. A replicated broker answers once a
    majority of its nodes is up, not all of them: the rest join a moment later."""
    last_reported = None

    def enough(metadata: ClusterMetadata) -> bool:
        nonlocal last_reported
        count = len(metadata.brokers)
        if count < needed and count != last_reported:
            report(count)
            last_reported = count
        return count >= needed

    metadata, done = _metadata_until(admin, enough, timeout, every=0.5)
    if not done:
        raise TooFewBrokers(
            f"the cluster has {len(metadata.brokers)} broker(s) after {timeout:.0f}s and "
            f"TOPIC_REPLICATION_FACTOR={needed} needs {needed}: start more brokers or lower "
            "TOPIC_REPLICATION_FACTOR"
        )
    return len(metadata.brokers)


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    created: bool
    partitions: int


def ensure_topics(
    admin: AdminClient,
    settings: TopicInitSettings,
    broker_wait: float = 0.0,
    report: Callable[[int], None] = lambda count: None,
) -> list[TopicOutcome]:
    """Create every missing topic, once the cluster has a broker for each replica (waiting up to
    ``broker_wait``); existing ones are left as they are, whatever brokers are up: a processor
    that runs setup-topics before it starts must start while a broker is away."""
    specs = pipeline_topics(settings)
    existing = admin.list_topics(timeout=10).topics
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        await_brokers(admin, settings.topic_replication_factor, broker_wait, report)
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                    config=spec.config,
                )
                for spec in missing
            ],
            operation_timeout=30,
        )
        for future in futures.values():
            try:
                future.result()
            except KafkaException as exc:  # another setup-topics may have won the race
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    created = {spec.name for spec in missing}
    topics = _wait_for_metadata(admin, [spec.name for spec in specs])
    return [
        TopicOutcome(spec.name, spec.name in created, len(topics[spec.name].partitions))
        for spec in specs
    ]


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float = 30.0) -> dict:
    """Topic metadata once every name is in it: a created topic reaches the metadata a moment
    after CreateTopics returns."""
    metadata, done = _metadata_until(
        admin, lambda m: all(name in m.topics and m.topics[name].partitions for name in names), timeout, every=0.2
    )
    if not done:
        missing = [name for name in names if name not in metadata.topics]
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"topics not visible yet: {missing}"))
    return metadata.topics


def _metadata_until(
    admin: AdminClient, done: Callable[[ClusterMetadata], bool], timeout: float, every: float
) -> tuple[ClusterMetadata, bool]:
    """The cluster's metadata, asked again every ``every`` seconds until ``done`` holds for it or
    ``timeout`` has passed; and whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=10)
        if done(metadata):
            return metadata, True
        if time.monotonic() >= deadline:
            return metadata, False
        time.sleep(every)
