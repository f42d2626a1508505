"""record-producer: put tombstone ids on the tombstones topic."""
