"""The chart's `helm test` script, run as a process against the real broker and processor."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.chart.manifests import HelmUnavailable, one, render
from harness.processes import clean_environ
from harness.topics import create_topics
from tests.support.pipeline import processor_settings, running_processor

pytestmark = pytest.mark.integration


async def test_the_helm_test_script_round_trips_through_the_pipeline(kafka, names, tmp_path):
    try:
        docs = await asyncio.to_thread(render, "default")
    except HelmUnavailable as exc:
        pytest.skip(f"needs helm to render the chart: {exc}")
    script = tmp_path / "roundtrip.py"
    script.write_text(one(docs, "ConfigMap", "helm-test")["data"]["roundtrip.py"])
    create_topics(kafka.bootstrap, names, partitions=2)
    env = {
        **clean_environ(), **names,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TEST_COUNT": "3", "TEST_TIMEOUT_SECONDS": "60",
    }
    async with running_processor(processor_settings(kafka.bootstrap, names, tmp_path)):
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, str(script)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nprocessed ") == 3
    assert result.stdout.rstrip().endswith("round trip ok")
