"""Starting, probing and stopping the stack's background processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(Exception):
    """A component could not be fetched, started or reached; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise StackError(f"{what}: the process exited")
        time.sleep(0.1)
    raise StackError(f"{what}: not ready after {timeout:.0f}s")


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


@dataclass
class Managed:
    """A background process with a pid file and a log file in ``run_dir``."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def spawn(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        inherit_env: bool = True,
        **as_user,
    ) -> int:
        """Start ``argv`` in the background; ``env`` adds to this process's environment, or is
        the whole environment when ``inherit_env`` is false; ``as_user`` (``user``, ``group``,
        ``extra_groups`` of ``subprocess.Popen``) runs it as another user."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**(os.environ if inherit_env else {}), **(env or {})},
                cwd=cwd,
                start_new_session=True,  # outlives the command that started it; own signals
                **as_user,
            )
        self.pid_file.write_text(str(process.pid))
        self._process = process
        return process.pid

    def start(
        self,
        argv: Sequence[str],
        ready: Callable[[], bool],
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        inherit_env: bool = True,
        **as_user,
    ) -> None:
        """Spawn ``argv`` and wait until ``ready()``; on failure, the error shows the log's tail."""
        self.spawn(argv, env=env, cwd=cwd, inherit_env=inherit_env, **as_user)
        try:
            wait_until(ready, timeout, self.name, self.running)
        except StackError as exc:
            raise StackError(f"{exc}\n{self.tail()}") from None

    def signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signum)

    @property
    def returncode(self) -> int | None:
        """Exit status of the process this object spawned (None while it runs)."""
        process = getattr(self, "_process", None)
        return process.poll() if process is not None else None

    def stop(self, timeout: float = 30.0, signum: int | None = None) -> None:
        """``signum`` (default SIGTERM), wait, then SIGKILL."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM if signum is None else signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def _alive(self, pid: int) -> bool:
        process = getattr(self, "_process", None)
        if process is not None and process.pid == pid:
            return process.poll() is None  # reaps our own child
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie of ours still answers kill(0); reap it
            done, _ = os.waitpid(pid, os.WNOHANG)
            return done == 0
        except ChildProcessError:
            return not _zombie(pid)  # someone else's child: exited once it is a zombie

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
