"""`devstack down` (make down) stops what the stack started, found by its pid files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from devstack import postgres
from devstack.postgres import PostgresServer
from devstack.procs import Managed, StackError

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


needs_postgres = pytest.mark.skipif(
    not postgres.available(), reason=f"no PostgreSQL server binaries: {postgres.INSTALL_HINT}"
)


def _owner(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@needs_postgres
def test_postgresql_runs_as_a_non_root_user_and_keeps_its_databases_over_a_restart(open_folder) -> None:
    home = open_folder / ".stack" / "postgres"
    server = PostgresServer(home)  # as `make up` makes it: data under its home, kept
    server.start()
    try:
        assert _owner(server.process.pid()) != 0
        assert server.data_dir == home.resolve() / "data"
        assert (server.data_dir.stat().st_uid != 0) == (os.geteuid() == 0)
        url = server.create_database("resonate")
        assert url == f"postgres://resonate@127.0.0.1:{server.port}/resonate?sslmode=disable"
        assert server.create_database("resonate") == url  # already there: no error
        port = server.port
        server.stop()
        assert not server.ready()

        again = PostgresServer(home)  # a new `make up`: same data, same port while it is free
        again.start()
        assert again.port == port
        assert again._psql("postgres", "SELECT datname FROM pg_database WHERE datname = 'resonate'").strip() == "resonate"
    finally:
        server.stop()
        PostgresServer(home).stop()


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_a_folder_postgresql_cannot_enter_is_named_or_worked_around(open_folder) -> None:
    locked = open_folder / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(StackError, match=f"cannot enter {locked}; allow it \\(chmod o\\+x {locked}\\)"):
        PostgresServer(locked / "postgres").start()

    throw_away = PostgresServer.on_free_port(locked / "test-postgres")  # a test's: data elsewhere
    throw_away.start()
    try:
        scratch = throw_away.data_dir.parent
        assert not str(scratch).startswith(str(locked))
        assert throw_away.create_database("resonate_t").endswith("/resonate_t?sslmode=disable")
    finally:
        throw_away.stop()
    assert not scratch.exists()
