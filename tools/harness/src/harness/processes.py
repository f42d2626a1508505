"""Processors as separate processes (what Kubernetes runs), for crash and scale tests and for
benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from devstack.procs import Managed, StackError, free_port, http_get, wait_until

BIN = Path(sys.executable).parent
FOREIGN = ("KAFKA_", "RESONATE_", "TOPIC_", "PROCESSOR_", "DELETE_", "SIMULATION_", "OTEL_")


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}


def metric(body: bytes, name: str) -> float | None:
    """The value of ``name`` in a /metrics body; None when it is not there (or nothing answered)."""
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class ProcessorProcess:
    """One ``record-processor``; every (re)start is a new process with a new name suffix."""

    def __init__(self, name: str, env: dict[str, str], run_dir: Path, command: list[str] | None = None) -> None:
        self.name = name
        self.env = env
        self.port = free_port()
        self.process = Managed(f"processor-{name}", run_dir)
        self.starts = 0
        self.pids: list[int] = []
        # Another program may stand in (a next release), or wrap it (a profiler).
        self.command = command or [str(BIN / "record-processor")]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        env = {
            **clean_environ(),
            **self.env,
            "PROCESSOR_NAME": f"{self.name}-r{self.starts}",
            "PROCESSOR_HTTP_PORT": str(self.port),
            "LOG_FORMAT": "json",
        }
        ready = lambda: http_get(self.url + "/readyz")[0] == 200  # noqa: E731
        # Only ``env``, run in ``run_dir``: nothing of the caller's environment or .env leaks in.
        self.process.start(
            self.command, ready, timeout, env=env, cwd=self.process.run_dir, inherit_env=False
        )
        self.pids.append(self.process.pid() or 0)

    @property
    def pid(self) -> int | None:
        return self.process.pid()

    def kill(self) -> None:
        self.process.kill()

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        self.process.signal(signal.SIGTERM)
        with contextlib.suppress(StackError):
            wait_until(lambda: self.process.returncode is not None, timeout, f"{self.name} exit")
        status = self.process.returncode
        if status is None:
            self.process.kill()
        self.process.pid_file.unlink(missing_ok=True)
        return status

    def metrics(self) -> bytes:
        return http_get(self.url + "/metrics")[1]
