"""The local stack as a whole: which components run, where, and the environment they imply."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from devstack import envfile
from devstack.jaeger import Jaeger
from devstack.kafka import KafkaBroker
from devstack.postgres import STORAGE_VARIABLE, PostgresServer, storage_backend
from devstack.procs import Managed, StackError
from devstack.resonate import ResonateServer, server_binary



@dataclass
class Stack:
    root: Path  # the repository

    @property
    def home(self) -> Path:
        return self.root / ".stack"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    @cached_property
    def kafka(self) -> KafkaBroker:
        return KafkaBroker(self.home / "kafka", self.cache, port=9092, controller_port=9093)

    @cached_property
    def storage(self) -> str:
        """The Resonate server's store, chosen by ``STACK_RESONATE_STORAGE`` (the environment, else the
        checkout's ``.env``): sqlite (default) or postgres."""
        return storage_backend(STORAGE_VARIABLE, self.root / ".env")

    @cached_property
    def postgres(self) -> PostgresServer | None:
        """PostgreSQL for the Resonate server, when it is the chosen store and there is a server."""
        if self.storage != "postgres" or server_binary() is None:
            return None
        return PostgresServer(self.home / "postgres")

    @cached_property
    def resonate(self) -> ResonateServer | None:
        binary = server_binary()
        return ResonateServer(self.home / "resonate", binary=binary, postgres=self.postgres) if binary else None

    @cached_property
    def jaeger(self) -> Jaeger | None:
        """Jaeger, once built (`make jaeger`): building it takes minutes, so `up` never does."""
        return Jaeger(self.home / "jaeger", self.root) if (self.cache / "bin" / "jaeger").exists() else None

    def components(self) -> list[KafkaBroker | PostgresServer | ResonateServer | Jaeger]:
        """What this machine can run, in start order: Kafka always, the others when present."""
        return [
            component for component in (self.kafka, self.postgres, self.resonate, self.jaeger)
            if component is not None
        ]

    def env(self) -> dict[str, str]:
        """The services' environment for these components."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers}
        if self.resonate is not None:
            env["RESONATE_URL"] = self.resonate.url
        if self.jaeger is not None:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.jaeger.otlp_endpoint
        return env

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    def up(self) -> tuple[dict[str, str], list[str]]:
        """Start the components and complete ``.env`` with their environment (checked first:
        nothing starts when ``.env`` sets one of its variables otherwise). Returns that environment
        and the variables added to ``.env``."""
        env = self.env()
        current = self.env_file.read_text() if self.env_file.exists() else ""
        try:
            merged = envfile.merge(current, env)
        except StackError as exc:
            raise StackError(f"{exc}; nothing was started") from None
        for component in self.components():
            component.start()
        if merged.text != current:
            self.env_file.write_text(merged.text)
        return env, merged.added

    def started(self) -> list[Managed]:
        """Every process the stack started (``up``, the demo), found by its pid file under
        ``.stack/`` — not by which binaries are on ``PATH`` now — in stop order: clients first,
        the broker last."""
        last = {"jaeger": 1, "resonate": 2, "postgres": 3, "kafka": 4}
        pid_files = sorted(self.home.rglob("*.pid"), key=lambda path: (last.get(path.stem, 0), str(path)))
        return [Managed(path.stem, path.parent) for path in pid_files]

    def down(self) -> list[str]:
        """Stop what the stack started; returns the names of those that were still running."""
        stopped = []
        for process in self.started():
            if process.running():
                stopped.append(process.name)
            # PostgreSQL's SIGTERM waits for its clients to leave; SIGINT closes them (fast shutdown).
            process.stop(signum=signal.SIGINT if process.name == "postgres" else signal.SIGTERM)
        self._remove_from_env_file()
        return stopped

    def status(self) -> dict[str, str]:
        resonate = self.resonate
        return {
            "kafka": f"running on {self.kafka.bootstrap_servers}" if self.kafka.process.running() else "stopped",
            "resonate": (
                "no binary (processor runs in local mode)"
                if resonate is None
                else f"running on {resonate.url} ({resonate.storage})" if resonate.process.running() else "stopped"
            ),
            **({"postgres": (
                f"running on 127.0.0.1:{self.postgres.port}" if self.postgres.process.running() else "stopped"
            )} if self.postgres is not None else {}),
            "jaeger": (
                "not built (make jaeger)"
                if self.jaeger is None
                else f"running, API/UI on {self.jaeger.query_url}" if self.jaeger.process.running() else "stopped"
            ),
        }

    def _remove_from_env_file(self) -> None:
        """Take back what ``up`` added to ``.env``; the user's own lines stay as they were."""
        if not self.env_file.exists():
            return
        text = self.env_file.read_text()
        kept = envfile.without_block(text)
        if kept == text:
            return
        if kept:
            self.env_file.write_text(kept)
        else:  # up wrote the whole file
            self.env_file.unlink()
