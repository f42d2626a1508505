"""Shared building blocks of the tombstone pipeline: settings, Kafka, telemetry, messages."""
