"""PostgreSQL as the Resonate server's store, as a local process (Debian's ``postgresql`` package).

The server binaries live in ``/usr/lib/postgresql/<version>/bin`` on Debian (the newest version
installed is used); elsewhere ``initdb`` and ``postgres`` on ``PATH``. PostgreSQL refuses to run
as root, so when devstack runs as root it runs ``initdb`` and ``postgres`` as the ``postgres``
system user (Debian's package creates it; devstack creates it when it is missing), which owns the
data directory and the socket directory. Only loopback TCP is opened, with ``trust``
authentication: a development store, not a production one.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from devstack.procs import Managed, StackError, free_port, port_open

# Not RESONATE_…: the server reads every RESONATE_* variable of its environment as its own
# configuration (RESONATE_STORAGE=postgres would be its `storage` section, and it refuses to start).
STORAGE_VARIABLE = "STACK_RESONATE_STORAGE"
BACKENDS = ("sqlite", "postgres")
SERVICE_USER = "postgres"
SUPERUSER = "resonate"  # the database role the Resonate server connects as
INSTALL_HINT = "Debian: apt-get install postgresql (scripts/bootstrap.sh installs it as root)"
_VERSION_DIR = re.compile(r"^\d+(\.\d+)?$")


def storage_backend(variable: str = STORAGE_VARIABLE, env_file: Path | None = None) -> str:
    """The Resonate server's store that ``variable`` selects: ``sqlite`` (unset) or ``postgres``;
    from the environment, else from ``env_file`` (a ``.env``) when given."""
    value = os.environ.get(variable)
    if value is None and env_file is not None and env_file.is_file():
        value = dotenv_values(env_file).get(variable)
    value = (value or "").strip().lower() or "sqlite"
    if value not in BACKENDS:
        raise StackError(f"{variable}={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


def bin_dir(lib: Path = Path("/usr/lib/postgresql")) -> Path:
    """The folder of ``initdb`` and ``postgres``: Debian's newest ``<lib>/<version>/bin``, else
    the folder of ``initdb`` on ``PATH``."""
    versions = sorted(
        (d for d in lib.glob("*") if _VERSION_DIR.match(d.name) and (d / "bin" / "postgres").exists()),
        key=lambda d: tuple(int(part) for part in d.name.split(".")),
    ) if lib.is_dir() else []
    if versions:
        return versions[-1] / "bin"
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    raise StackError(f"no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")


def available() -> bool:
    try:
        bin_dir()
    except StackError:
        return False
    return True


@dataclass(frozen=True)
class ServiceUser:
    """Whom PostgreSQL runs as: ``None`` fields = this process's own user (not root)."""

    name: str | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_this_process(cls) -> ServiceUser:
        if os.geteuid() != 0:
            return cls()
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            _create_system_user(SERVICE_USER)
            entry = pwd.getpwnam(SERVICE_USER)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def popen_args(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        """Make ``path`` (a folder devstack created) this user's, private to it."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        path.chmod(0o700)

    def can_reach(self, path: Path) -> bool:
        """Whether this user can enter ``path`` (every folder above it must be searchable)."""
        if self.uid is None:
            return os.access(path, os.X_OK)
        probe = subprocess.run(["test", "-x", str(path)], check=False, **self.popen_args())
        return probe.returncode == 0

    def blocking_folder(self, path: Path) -> Path | None:
        for folder in [*reversed(path.parents), path]:
            if not self.can_reach(folder):
                return folder
        return None


def _create_system_user(name: str) -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise StackError(f"PostgreSQL refuses to run as root and there is no {name!r} user to run it as "
                         f"(no useradd to create one): {INSTALL_HINT}")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "PostgreSQL (devstack)", name],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise StackError(f"creating the system user {name!r} for PostgreSQL failed: {result.stderr.strip()}")


class PostgresServer:
    """One PostgreSQL cluster on loopback ``port``; pid file and log under ``home``, data in
    ``home/data`` — or, for a throw-away server (``ephemeral``) whose ``home`` the service user
    cannot enter (a root-only test folder), in a private temporary folder removed by ``stop``."""

    def __init__(self, home: Path, port: int | None = None, ephemeral: bool = False) -> None:
        self.home = home.resolve()
        self._port = port
        self.ephemeral = ephemeral
        self.process = Managed("postgres", self.home)
        self._scratch: Path | None = None

    @classmethod
    def on_free_port(cls, home: Path) -> PostgresServer:
        """A throw-away server (tests, benchmarks): a free port, no fsync."""
        return cls(home, port=free_port(), ephemeral=True)

    @property
    def port_file(self) -> Path:
        return self.home / "port"

    @property
    def port(self) -> int:
        """The given port; else the one this server runs on (or last ran on, while it is free)."""
        if self._port is None:
            try:
                self._port = int(self.port_file.read_text())
            except (FileNotFoundError, ValueError):
                self._port = free_port()
        return self._port

    @property
    def data_dir(self) -> Path:
        return (self._scratch or self.home) / "data"

    @property
    def socket_dir(self) -> Path:
        return (self._scratch or self.home) / "run"

    def _socket_setting(self) -> str:
        """The socket folder, or none when its path is too long for a unix socket (about 107
        bytes; a deep test folder): every client here connects over loopback TCP anyway."""
        socket = self.socket_dir / f".s.PGSQL.{self.port}.lock"
        return str(self.socket_dir) if len(str(socket).encode()) < 100 else ""

    def url(self, database: str) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def _bin(self, name: str) -> str:
        return str(bin_dir() / name)

    def _prepare_folders(self, user: ServiceUser) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self._scratch is None and user.uid is not None and not user.can_reach(self.home):
            if not self.ephemeral:
                folder = user.blocking_folder(self.home)
                raise StackError(
                    f"PostgreSQL runs as the {user.name!r} user (it refuses root), which cannot enter "
                    f"{folder}; allow it (chmod o+x {folder}) or move the checkout"
                )
            self._scratch = Path(tempfile.mkdtemp(prefix="devstack-postgres-"))
            user.own(self._scratch)
            (self.home / "data-dir").write_text(f"{self._scratch}\n")  # where to look, for a human
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            user.own(folder)

    def _initdb(self, user: ServiceUser) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        argv = [self._bin("initdb"), "--pgdata", str(self.data_dir), "--username", SUPERUSER,
                "--auth", "trust", "--encoding", "UTF8", "--locale", "C"]
        if self.ephemeral:
            argv.append("--no-sync")
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/",
                                **user.popen_args())
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")

    def argv(self) -> list[str]:
        argv = [
            self._bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._socket_setting()}",
            "-c", "max_connections=200",
        ]
        if self.ephemeral:  # a test's store: nothing to keep over a machine crash
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return argv

    def ready(self) -> bool:
        probe = subprocess.run(
            [self._bin("pg_isready"), "--quiet", "--host", "127.0.0.1", "--port", str(self.port),
             "--username", SUPERUSER, "--dbname", "postgres", "--timeout", "1"],
            check=False, capture_output=True,
        )
        return probe.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        if self.process.running():
            return
        user = ServiceUser.for_this_process()
        self._prepare_folders(user)
        self._initdb(user)
        if self._port is None:  # the stack's: the port it last ran on, unless another took it
            remembered = self.port
            self._port = remembered if not port_open(remembered) else free_port()
        self.port_file.write_text(f"{self.port}\n")
        self.process.start(self.argv(), self.ready, timeout, cwd=Path("/"), **user.popen_args())

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; return its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise StackError(f"database name {name!r}: lower-case letters, digits and _ only")
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [self._bin("psql"), "--no-psqlrc", "--tuples-only", "--no-align", "--host", "127.0.0.1",
             "--port", str(self.port), "--username", SUPERUSER, "--dbname", database,
             "--set", "ON_ERROR_STOP=1", "--command", sql],
            capture_output=True, text=True, check=False, timeout=30,
        )
        if result.returncode != 0:
            raise StackError(f"psql {sql!r} failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        """Fast shutdown (SIGINT: connections are closed, not waited for)."""
        self.process.stop(signum=signal.SIGINT)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            (self.home / "data-dir").unlink(missing_ok=True)
            self._scratch = None

    def kill(self) -> None:
        self.process.kill()
