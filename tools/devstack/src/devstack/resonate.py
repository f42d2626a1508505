"""The Resonate server as a local process, when a ``resonate`` binary is available.

No package registry carries the server, so it is looked up on ``PATH`` or in
``RESONATE_SERVER_BIN``; without it the processor runs in local (in-process) mode. Its store is
a SQLite file under its home, or a PostgreSQL database (``postgres_url``), whose schema the
server creates itself. With ``auth`` it requires a JWT on every request, signed by the private
half of ``auth.publickey`` (a PEM file: RSA, EC P-256/P-384 or Ed25519), with an ``exp`` claim,
and ``iss``/``aud`` claims equal to ``auth.iss``/``auth.aud`` when those are given.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from devstack.postgres import PostgresServer
from devstack.procs import Managed, StackError, free_port, http_get


def server_binary() -> str | None:
    configured = os.environ.get("RESONATE_SERVER_BIN")
    if configured:
        if not os.access(configured, os.X_OK):
            raise StackError(f"RESONATE_SERVER_BIN={configured} is not an executable file")
        return configured
    return shutil.which("resonate")


HEALTH_PATH = "/health"


def storage_args(sqlite_path: Path, postgres_url: str | None) -> list[str]:
    """The server's store: the SQLite file, or the PostgreSQL database when a URL is given."""
    if postgres_url is None:
        return ["--storage-sqlite-path", str(sqlite_path)]  # (the server's default type)
    return ["--storage-type", "postgres", "--storage-postgres-url", postgres_url]


@dataclass(frozen=True)
class ServerAuth:
    """The server's JWT verification: the public key's PEM file, and the issuer and audience a
    token must name (not checked when None)."""

    publickey: Path
    iss: str | None = None
    aud: str | None = None

    def args(self) -> list[str]:
        args = ["--auth-publickey", str(self.publickey)]
        if self.iss is not None:
            args += ["--auth-iss", self.iss]
        if self.aud is not None:
            args += ["--auth-aud", self.aud]
        return args


def serve_args(
    database: Path, port: int, metrics_port: int, timer_poll_ms: int, postgres_url: str | None = None,
    auth: ServerAuth | None = None,
) -> list[str]:
    return [
        "serve",
        "--server-bind", "127.0.0.1",
        "--server-port", str(port),
        *storage_args(database, postgres_url),
        "--observability-metrics-port", str(metrics_port),
        # how often durable sleeps and expired leases are checked (server default: 1000 ms)
        "--timeouts-poll-interval", str(timer_poll_ms),
        # a task whose dispatch found no worker is offered again after this (default: 30000 ms)
        "--tasks-retry-timeout", "5000",
        *(auth.args() if auth is not None else []),
    ]


class ResonateServer:
    """One server on loopback ``port`` with a SQLite store under ``home``, or with the database
    ``postgres_database`` (created when missing) of a running ``postgres``; requiring tokens when
    ``auth`` is given."""

    def __init__(
        self,
        home: Path,
        port: int = 8001,
        metrics_port: int = 9091,
        timer_poll_ms: int = 200,
        binary: str | None = None,
        postgres: PostgresServer | None = None,
        postgres_database: str = "resonate",
        auth: ServerAuth | None = None,
    ) -> None:
        self.home = home.resolve()
        self.port = port
        self.metrics_port = metrics_port
        self.timer_poll_ms = timer_poll_ms
        self.binary = binary or server_binary()
        self.postgres = postgres
        self.postgres_database = postgres_database
        self.auth = auth
        self.process = Managed("resonate", self.home)

    @classmethod
    def on_free_ports(
        cls, home: Path, timer_poll_ms: int = 100, postgres: PostgresServer | None = None,
        postgres_database: str = "resonate", auth: ServerAuth | None = None,
    ) -> ResonateServer:
        """A server of its own (tests, benchmarks): free loopback ports, timers checked often."""
        return cls(home, port=free_port(), metrics_port=free_port(), timer_poll_ms=timer_poll_ms,
                   postgres=postgres, postgres_database=postgres_database, auth=auth)

    @property
    def storage(self) -> str:
        return "sqlite" if self.postgres is None else "postgres"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        if self.binary is None:
            raise StackError("no resonate binary on PATH or in RESONATE_SERVER_BIN")
        database = self.home / "resonate.db"
        postgres_url = None if self.postgres is None else self.postgres.url(self.postgres_database)
        return [self.binary, *serve_args(
            database, self.port, self.metrics_port, self.timer_poll_ms, postgres_url, self.auth
        )]

    def start(self, timeout: float = 30.0) -> None:
        if self.process.running():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        if self.postgres is not None:
            self.postgres.create_database(self.postgres_database)
        healthy = lambda: http_get(self.url + HEALTH_PATH, timeout=1)[0] == 200  # noqa: E731
        self.process.start(self.argv(), healthy, timeout, cwd=self.home)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()
