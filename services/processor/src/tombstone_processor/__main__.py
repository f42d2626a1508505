"""``python -m tombstone_processor``: the same as ``record-processor`` (e.g. under a profiler)."""

from tombstone_processor.cli import main

main()
