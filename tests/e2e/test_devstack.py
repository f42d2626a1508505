"""`devstack down` (make down) stops what the stack started, found by its pid files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from devstack.procs import Managed

pytestmark = pytest.mark.e2e

DEVSTACK = Path(sys.executable).parent / "devstack"
# Stands in for a server binary: runs until signalled.
IDLE = [sys.executable, "-c", "import signal; signal.pause()"]


def test_down_stops_what_up_started_even_when_its_binary_is_no_longer_on_path(tmp_path) -> None:
    root = tmp_path / "repo"
    (root / ".stack").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    # What `up` leaves behind: one process per component with a pid file under .stack/<name>/.
    started = {name: Managed(name, root / ".stack" / name) for name in ("resonate", "jaeger", "kafka")}
    for process in started.values():
        process.spawn(IDLE)
    (root / ".stack" / "kafka" / "stale.pid").write_text("999999999")  # gone long ago

    # A new terminal: neither `resonate` nor RESONATE_SERVER_BIN, Jaeger never built here.
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    result = subprocess.run([str(DEVSTACK), "down"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert "jaeger, resonate, kafka" in result.stdout, result.stdout
    for name, process in started.items():
        assert process.returncode is not None, f"{name} still runs"
        assert not process.pid_file.exists(), name


def test_down_with_nothing_started_says_so(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    result = subprocess.run([str(DEVSTACK), "down"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/nonexistent", "HOME": str(tmp_path)}, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "nothing was running" in result.stdout
