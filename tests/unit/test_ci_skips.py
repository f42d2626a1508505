"""With CI=true, a skip fails the run unless it is the durable tier's (no Resonate server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_SERVER, ci_forbids_skip

REPO = Path(__file__).resolve().parents[2]


def test_only_the_durable_tier_may_skip_in_ci(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert ci_forbids_skip("chart tests need helm: not found")
    assert not ci_forbids_skip(f"('tests/x.py', 3, 'Skipped: {NO_SERVER}')")
    monkeypatch.delenv("CI")
    assert not ci_forbids_skip("chart tests need helm: not found")


@pytest.mark.parametrize("ci, reason, outcome", [
    ("true", "no helm here", "failed"),
    ("true", NO_SERVER, "skipped"),
    ("", "no helm here", "skipped"),
])
def test_a_skipped_test_under_ci(tmp_path, ci: str, reason: str, outcome: str) -> None:
    probe = REPO / "tests" / f"test_ci_probe_{tmp_path.name}.py"
    probe.write_text(f"import pytest\n\ndef test_probe():\n    pytest.skip({reason!r})\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(probe), "-q", "-p", "no:cacheprovider", "-rA"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
            env={"PATH": "/usr/bin:/bin", "CI": ci, "HOME": str(tmp_path)},
        )
    finally:
        probe.unlink()
    assert f"1 {outcome}" in result.stdout, result.stdout[-1500:]
