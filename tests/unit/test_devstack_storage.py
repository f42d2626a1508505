"""The local stack's choice of store for the Resonate server (STACK_RESONATE_STORAGE) and how it starts
the server on it; the PostgreSQL process itself is exercised in tests/e2e/test_devstack.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack.postgres import STORAGE_VARIABLE, PostgresServer, bin_dir, storage_backend
from devstack.procs import Managed, StackError
from devstack.resonate import ResonateServer, serve_args
from devstack.stack import Stack
from tests.conftest import needs_a_server


@pytest.mark.parametrize(("value", "expected"), [
    (None, "sqlite"), ("", "sqlite"), ("sqlite", "sqlite"), ("postgres", "postgres"), (" Postgres ", "postgres"),
])
def test_one_variable_chooses_the_store(monkeypatch, value, expected) -> None:
    if value is None:
        monkeypatch.delenv("STACK_RESONATE_STORAGE", raising=False)
    else:
        monkeypatch.setenv("STACK_RESONATE_STORAGE", value)
    assert storage_backend() == expected


def test_the_variable_is_not_one_the_server_reads_as_its_own_configuration() -> None:
    # The server takes every RESONATE_* variable of its environment (which the stack passes on) as
    # configuration; RESONATE_STORAGE=postgres stopped it with "invalid type … for key STORAGE".
    assert not STORAGE_VARIABLE.startswith("RESONATE_")


def test_an_unknown_store_is_refused_with_the_choices(monkeypatch) -> None:
    monkeypatch.setenv("STACK_RESONATE_STORAGE", "postgresql")
    with pytest.raises(StackError, match="STACK_RESONATE_STORAGE='postgresql': expected one of sqlite, postgres"):
        storage_backend()


def _server_binaries(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (folder / name).write_text("")


def test_the_newest_installed_postgresql_version_is_used(tmp_path) -> None:
    for version in ("9.6", "13", "15"):
        _server_binaries(tmp_path / version / "bin")
    (tmp_path / "17" / "bin").mkdir(parents=True)  # client only: no server binaries
    (tmp_path / "common").mkdir()
    assert bin_dir(tmp_path) == tmp_path / "15" / "bin"


def test_no_postgresql_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="apt-get install postgresql"):
        bin_dir(tmp_path / "absent")


def test_the_server_gets_the_postgres_store_flags_only_with_a_url(tmp_path) -> None:
    url = "postgres://resonate@127.0.0.1:5999/resonate?sslmode=disable"
    on_postgres = serve_args(tmp_path / "resonate.db", 8001, 9091, 100, postgres_url=url)
    assert on_postgres[on_postgres.index("--storage-type") + 1] == "postgres"
    assert on_postgres[on_postgres.index("--storage-postgres-url") + 1] == url
    assert not [arg for arg in on_postgres if "sqlite" in arg]
    on_sqlite = serve_args(tmp_path / "resonate.db", 8001, 9091, 100)
    assert on_sqlite[on_sqlite.index("--storage-sqlite-path") + 1] == str(tmp_path / "resonate.db")
    assert not [arg for arg in on_sqlite if "postgres" in arg]


def test_a_resonate_server_on_postgres_names_its_own_database(tmp_path) -> None:
    store = PostgresServer(tmp_path / "pg", port=5999)
    server = ResonateServer(tmp_path / "rs", binary="/bin/true", postgres=store, postgres_database="resonate_a1")
    argv = server.argv()
    assert argv[argv.index("--storage-postgres-url") + 1] == (
        "postgres://resonate@127.0.0.1:5999/resonate_a1?sslmode=disable"
    )
    assert server.storage == "postgres"


def _stack(tmp_path, monkeypatch, storage: str | None) -> Stack:
    fake_server = tmp_path / "resonate"
    fake_server.write_text("#!/bin/sh\n")
    fake_server.chmod(0o755)
    monkeypatch.setenv("RESONATE_SERVER_BIN", str(fake_server))
    if storage is None:
        monkeypatch.delenv("STACK_RESONATE_STORAGE", raising=False)
    else:
        monkeypatch.setenv("STACK_RESONATE_STORAGE", storage)
    return Stack(tmp_path / "repo")


def test_the_stack_starts_postgresql_before_the_server_only_when_chosen(tmp_path, monkeypatch) -> None:
    names = [type(c).__name__ for c in _stack(tmp_path, monkeypatch, "postgres").components()]
    assert names == ["KafkaBroker", "PostgresServer", "ResonateServer"]
    stack = _stack(tmp_path, monkeypatch, "postgres")
    assert stack.resonate.postgres is stack.postgres
    assert stack.postgres.home == (tmp_path / "repo" / ".stack" / "postgres").resolve()
    default = _stack(tmp_path, monkeypatch, None)
    assert [type(c).__name__ for c in default.components()] == ["KafkaBroker", "ResonateServer"]
    assert default.resonate.postgres is None


def test_down_stops_postgresql_after_the_server_and_before_the_broker(tmp_path) -> None:
    stack = Stack(tmp_path)
    for name in ("kafka", "postgres", "resonate", "jaeger"):
        Managed(name, stack.home / name).run_dir.mkdir(parents=True)
        (stack.home / name / f"{name}.pid").write_text("999999999")
    assert [p.name for p in stack.started()] == ["jaeger", "resonate", "postgres", "kafka"]


# Records the signal that stopped it (after saying it is ready to receive one).
SIGNAL_RECORDER = """
import pathlib, signal, sys
out = pathlib.Path(sys.argv[1])
def stopped(signum, frame):
    out.write_text(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGINT, stopped)
signal.signal(signal.SIGTERM, stopped)
pathlib.Path(sys.argv[2]).write_text("ready")
while True:
    signal.pause()
"""


def test_down_asks_postgresql_for_a_fast_shutdown(tmp_path) -> None:
    stack = Stack(tmp_path)
    for name in ("postgres", "resonate"):
        home = stack.home / name
        Managed(name, home).start(
            [sys.executable, "-c", SIGNAL_RECORDER, str(home / "stopped-by"), str(home / "ready")],
            ready=(home / "ready").exists, timeout=30,
        )
    assert stack.down() == ["resonate", "postgres"]
    assert (stack.home / "resonate" / "stopped-by").read_text() == "SIGTERM"
    assert (stack.home / "postgres" / "stopped-by").read_text() == "SIGINT"  # fast shutdown


def test_a_socket_path_too_long_for_unix_sockets_leaves_them_off(tmp_path) -> None:
    short = PostgresServer(Path("/tmp/pg"), port=5999)
    assert short._socket_setting() == "/tmp/pg/run"
    deep = PostgresServer(tmp_path / ("d" * 90), port=5999)
    assert deep._socket_setting() == ""  # loopback TCP only


def test_only_a_throw_away_server_trades_durability_for_speed(tmp_path) -> None:
    assert "fsync=off" in PostgresServer.on_free_port(tmp_path).argv()
    assert "fsync=off" not in PostgresServer(tmp_path, port=5999).argv()


class _Item:
    def __init__(self, fixtures: list[str], params: dict | None = None) -> None:
        self.fixturenames = fixtures
        if params is not None:
            self.callspec = type("CallSpec", (), {"params": params})()


def test_every_test_that_needs_a_server_is_in_the_durable_tier() -> None:
    assert needs_a_server(_Item(["kafka", "resonate_server"]))
    assert needs_a_server(_Item(["private_stack"]))
    assert needs_a_server(_Item(["kafka", "mode"], {"mode": "durable"}))
    assert not needs_a_server(_Item(["kafka", "mode"], {"mode": "local"}))
    assert not needs_a_server(_Item(["kafka", "tmp_path"]))



def test_the_store_can_be_chosen_in_the_checkouts_env_file_and_the_environment_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("STACK_RESONATE_STORAGE", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092\nSTACK_RESONATE_STORAGE=postgres\n")
    assert storage_backend(env_file=env_file) == "postgres"
    assert storage_backend(env_file=tmp_path / "absent") == "sqlite"
    monkeypatch.setenv("STACK_RESONATE_STORAGE", "sqlite")
    assert storage_backend(env_file=env_file) == "sqlite"
