"""Processor configuration (environment only)."""

from __future__ import annotations

import socket

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from tombstone_common.messages import MAX_GENERATION
from tombstone_common.settings import BaseServiceSettings, PipelineSettings


class SimulationSettings(PipelineSettings):
    """The simulated deletion, recognisable from the original example."""

    delete_error_rate: float = Field(
        0.25, ge=0, le=1, description="Chance that one delete attempt fails (then retried)."
    )
    delete_done_rate: float = Field(
        0.25, ge=0, le=1, description="Chance that a successful batch was the last one."
    )
    delete_max_batches: int = Field(
        100, ge=1, description="Upper bound on batches when the count is random."
    )
    delete_batch_interval_seconds: float = Field(
        5.0, ge=0, description="Durable sleep between two batches."
    )
    delete_max_attempts: int = Field(
        8, ge=1, description="Attempts per batch before the tombstone is dead-lettered."
    )
    delete_retry_initial_seconds: float = Field(
        0.5, ge=0, description="First retry delay; doubles per attempt."
    )
    delete_retry_max_seconds: float = Field(10.0, ge=0, description="Retry delay ceiling.")
    simulation_seed: int | None = Field(
        None, description="Seed for the random choices; each (id, batch, attempt) draws the same."
    )
    delete_ledger_path: str | None = Field(
        None, description="Append one JSON line per delete attempt to this file (tests, chaos)."
    )


class ResonateSettings(BaseServiceSettings):
    """The Resonate server, as the processor and ``record-admin`` reach it."""

    resonate_url: AnyHttpUrl | None = Field(
        None, description="Resonate server URL; unset = in-process local mode (not durable)."
    )
    resonate_token: SecretStr | None = Field(None, description="Bearer token for the server.")


class AdminSettings(PipelineSettings, ResonateSettings):
    """``record-admin``: the broker and topics, the server, and the replay guard."""

    dlq_max_replays: int = Field(
        3, ge=0, le=MAX_GENERATION,
        description="`record-admin dlq replay` leaves a dead letter in the DLQ once its tombstone was replayed this many times.",
    )


class ProcessorSettings(SimulationSettings, ResonateSettings):
    resonate_listener_refresh_seconds: float = Field(
        600.0, gt=0,
        description="How often every followed workflow's listener is registered again (one request each), in case a notification was lost while the event stream reconnected; until then such a workflow keeps its slot.",
    )
    resonate_stream_idle_seconds: float = Field(
        30.0, gt=0,
        description="A silent event stream from the server is reconnected after this (the server sends nothing while idle, and one that vanished without closing it, its node lost, sends nothing either).",
    )
    resonate_group: str = Field(
        "tombstone-processors", min_length=1, description="Resonate worker group of processors."
    )
    resonate_ttl_seconds: float = Field(
        15.0, gt=0, description="Task lease; a dead processor's workflows resume after it."
    )
    kafka_consumer_group: str = Field(
        "tombstone-processor", min_length=1, description="Kafka consumer group id."
    )
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1_000, le=300_000,
        description="A processor that stops heartbeating loses its partitions after this.",
    )
    kafka_max_poll_interval_ms: int = Field(
        300_000, ge=1_000, le=3_600_000,
        description="A consumer that does not poll this long leaves its group (the intake always polls).",
    )
    processor_max_in_flight: int = Field(
        100, ge=1, le=100_000, description="Workflows in flight per processor; at the bound no records are taken (partitions paused after 0.25 s)."
    )
    processor_max_record_bytes: int = Field(
        65536, ge=64, description="Larger tombstone values are dead-lettered."
    )
    processor_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="Name in `processed` records (default: host name = pod name).",
    )
    processor_http_port: int = Field(
        8080, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics (0 = off)."
    )
    processor_shutdown_grace_seconds: float = Field(
        20.0, ge=1,
        description="On SIGTERM, the whole shutdown (finishing steps, committing, flushing) ends within this.",
    )
    processor_publish_retry_seconds: float = Field(
        600.0, gt=0,
        description="How long the publish step retries a transient failure (a broker restart) before the tombstone is dead-lettered; a refusal is not retried.",
    )
    processor_handoff_attempts: int = Field(
        3, ge=1, le=100,
        description="Refusals (4xx…) of a hand-off, step or dead-letter write before giving up on it.",
    )
    processor_liveness_seconds: float = Field(
        60.0, gt=0,
        description="/healthz fails when the intake made no progress this long with records pending.",
    )

    @model_validator(mode="after")
    def _poll_interval_covers_the_session(self) -> ProcessorSettings:
        if self.kafka_max_poll_interval_ms < self.kafka_session_timeout_ms:
            raise ValueError("KAFKA_MAX_POLL_INTERVAL_MS must be >= KAFKA_SESSION_TIMEOUT_MS")
        return self

    @model_validator(mode="after")
    def _retry_delays_ordered(self) -> ProcessorSettings:
        if self.delete_retry_max_seconds < self.delete_retry_initial_seconds:
            raise ValueError(
                "DELETE_RETRY_MAX_SECONDS must be >= DELETE_RETRY_INITIAL_SECONDS"
            )
        return self
