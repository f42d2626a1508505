"""Every benchmark scenario at tiny sizes, against the session's broker and Resonate server.

`make bench` is run by hand and rarely; this keeps it from rotting between runs (it once broke on
a changed method signature and nothing noticed). A scenario passes when it runs to the end and
fills its table and plot. No timing is asserted here: numbers belong to `make bench` alone.
"""

from __future__ import annotations

import pytest

from bench import SCENARIOS
from bench.report import plots
from bench.stack import CACHE, Stack
from devstack.kafka import KafkaBroker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(kafka, resonate_server, tmp_path_factory) -> Stack:
    """The session's broker and server; a broker of its own when the session's was given from
    outside (the floor reads the broker's CPU from its process)."""
    run_dir = tmp_path_factory.mktemp("bench")
    if kafka.handle is not None:
        yield Stack(run_dir, kafka.handle, resonate_server)
        return
    broker = KafkaBroker.on_free_ports(run_dir / "kafka", CACHE)
    broker.start()
    try:
        yield Stack(run_dir, broker, resonate_server)
    finally:
        broker.stop()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_runs_and_fills_its_table(stack, name, tmp_path):
    scenario = SCENARIOS[name]
    section = scenario.run(stack, scenario.SMOKE)
    assert section.problem() is None, f"{scenario.TITLE}: {section.problem()}"
    assert section.plot is not None, f"{scenario.TITLE} draws no plot"
    png = tmp_path / f"{name}.png"
    plots([section], png)
    assert png.stat().st_size > 0
