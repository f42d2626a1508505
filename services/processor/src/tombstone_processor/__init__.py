"""record-processor: consume tombstones, run one durable Resonate workflow per tombstone."""
