"""Benchmarks against the real broker and Resonate server: `make bench` (see bench/README.md).

Every scenario is a module with a ``TITLE``, its sizes (``FULL`` for `make bench`, ``SMOKE`` for
the run in `make test` that keeps every scenario working) and ``run(stack, sizes) -> Section``.
"""

from types import ModuleType

from bench import floor, hol, latency, memory, recovery, throughput

SCENARIOS: dict[str, ModuleType] = {
    module.__name__.removeprefix("bench."): module
    for module in (floor, latency, throughput, hol, recovery, memory)
}
