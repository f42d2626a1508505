"""Test-session services: a real Kafka broker (started here unless one is given)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.jaeger import Jaeger
from devstack.kafka import KafkaBroker
from devstack.procs import Managed, free_port
from devstack import postgres
from devstack.postgres import PostgresServer, storage_backend
from devstack.resonate import ResonateServer, server_binary

from tombstone_common.telemetry import configure_tracing

REPO = Path(__file__).resolve().parent.parent
configure_tracing("tests")  # real span contexts (and traceparent headers); exported only with OTEL_* set
CACHE = REPO / ".cache"


@dataclass
class Broker:
    bootstrap: str
    handle: KafkaBroker | None  # None when the broker was given from outside


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> Broker:
    """A real broker: ``TEST_KAFKA_BOOTSTRAP_SERVERS`` if set, else one started for the session."""
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield Broker(given, None)
        return
    broker = KafkaBroker.on_free_ports(tmp_path_factory.mktemp("kafka"), CACHE)
    broker.start()
    try:
        yield Broker(broker.bootstrap_servers, broker)
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def no_process_outlives_its_test(tmp_path):
    """Whatever a test started in its tmp_path (a pid file of devstack's Managed) is killed when
    the test ends, also when it failed half-way through."""
    yield
    for pid_file in tmp_path.rglob("*.pid"):
        Managed(pid_file.stem, pid_file.parent).kill()


@pytest.fixture
def open_folder():
    """A folder every user may enter (pytest's own are its owner's only), removed afterwards:
    where a checkout would be (as root, devstack runs PostgreSQL as another user, who must
    enter it). What was started in it is killed first."""
    folder = Path(tempfile.mkdtemp(prefix="devstack-test-"))
    folder.chmod(0o755)
    yield folder
    for pid_file in folder.rglob("*.pid"):
        Managed(pid_file.stem, pid_file.parent).kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def uid() -> str:
    """Unique to one test: prefixes its topics, groups and tombstone ids (promise ids are global
    on a shared Resonate server)."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def names(uid) -> dict[str, str]:
    """Topic and group names unique to one test, as the services' environment spells them."""
    run = uid
    return {
        "TOPIC_TOMBSTONES": f"tombstones-{run}",
        "TOPIC_PROCESSED": f"processed-{run}",
        "TOPIC_DLQ": f"tombstones-{run}.dlq",
        "KAFKA_CONSUMER_GROUP": f"processor-{run}",
        "RESONATE_GROUP": f"processors-{run}",
    }


NO_SERVER = (
    "no Resonate server binary: put `resonate` on PATH or set RESONATE_SERVER_BIN "
    "to run the durable-mode tests"
)


# The Resonate servers' store in this run: sqlite (default) or postgres.
STORAGE_VARIABLE = "TEST_RESONATE_STORAGE"


def chosen_storage() -> str:
    return storage_backend(STORAGE_VARIABLE)


@pytest.fixture(scope="session")
def resonate_store(tmp_path_factory) -> PostgresServer | None:
    """The store of every Resonate server of the session: None for SQLite (a file per server), or
    one PostgreSQL server (a database per Resonate server) with TEST_RESONATE_STORAGE=postgres."""
    if chosen_storage() == "sqlite":
        yield None
        return
    if server_binary() is None:
        pytest.skip(NO_SERVER)
    if not postgres.available():
        pytest.skip(f"{STORAGE_VARIABLE}=postgres but no PostgreSQL server binaries: {postgres.INSTALL_HINT}")
    store = PostgresServer.on_free_port(tmp_path_factory.mktemp("postgres"))
    store.start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture(scope="session")
def resonate_server(tmp_path_factory, request) -> ResonateServer:
    """A real Resonate server with a temporary store (TEST_RESONATE_STORAGE); skips the test when
    there is no server binary."""
    if server_binary() is None:
        pytest.skip(NO_SERVER)
    store = request.getfixturevalue("resonate_store")
    server = ResonateServer.on_free_ports(
        tmp_path_factory.mktemp("resonate"), postgres=store, postgres_database="resonate_session"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def own_resonate_server(home: Path, store: PostgresServer | None, **options) -> ResonateServer:
    """A Resonate server of a test's own (not started yet) with ``options`` (``auth``,
    ``timer_poll_ms``, …), on the session's store (``resonate_store``: a database of its own on
    PostgreSQL); skips the test when there is no server binary."""
    if server_binary() is None:
        pytest.skip(NO_SERVER)
    return ResonateServer.on_free_ports(
        home, postgres=store, postgres_database=f"resonate_{uuid.uuid4().hex[:12]}", **options
    )


@pytest.fixture(params=["local", "durable"])
def mode(request) -> dict[str, str]:
    """Run a test in Resonate's in-process local mode and against a real Resonate server."""
    if request.param == "local":
        return {}
    server = request.getfixturevalue("resonate_server")
    return {"resonate_url": server.url}


SERVER_FIXTURES = {"resonate_server", "private_stack", "resonate_store"}


def needs_a_server(item) -> bool:
    """Whether a test runs against a real Resonate server: it uses one of the server fixtures,
    or it is the durable half of a test parametrized over ``mode``."""
    callspec = getattr(item, "callspec", None)
    return bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))) or (
        callspec is not None and callspec.params.get("mode") == "durable"
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Every test that needs a Resonate server carries the ``durable`` marker, so `-m durable`
    selects the whole durable tier (CI runs it once per store)."""
    for item in items:
        if needs_a_server(item):
            item.add_marker(pytest.mark.durable)


def ci_forbids_skip(reason: str) -> bool:
    """With CI=true a skipped test means a preparation CI should have made: the one skip allowed
    is the durable tier's, when no Resonate server binary exists (no registry carries one)."""
    return os.environ.get("CI") == "true" and NO_SERVER not in reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if ci_forbids_skip(reason):
            report.outcome = "failed"
            report.longrepr = f"CI=true allows no skip but the durable tier's; this one: {reason}"


def pytest_report_header(config) -> str:
    binary = server_binary()
    if not binary:
        return f"resonate server: none ({NO_SERVER})"
    return f"resonate server: {binary}, store: {chosen_storage()} ({STORAGE_VARIABLE})"


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory) -> Jaeger:
    """A real Jaeger v2 (in-memory) on free loopback ports; skips when it has not been built."""
    if not (CACHE / "bin" / "jaeger").exists():
        pytest.skip("no Jaeger binary: `make jaeger` builds it from its Go module (several minutes, once)")
    server = Jaeger(
        tmp_path_factory.mktemp("jaeger"), REPO, otlp_http_port=free_port(), otlp_grpc_port=free_port(),
        query_port=free_port(), query_grpc_port=free_port(), health_port=free_port(), metrics_port=free_port(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_stack(tmp_path, request):
    """A broker and a Resonate server of this test's own, which it may stop and restart (on
    PostgreSQL: a database of its own on the session's PostgreSQL server)."""
    if server_binary() is None:
        pytest.skip(NO_SERVER)
    store = request.getfixturevalue("resonate_store")
    broker = KafkaBroker.on_free_ports(tmp_path / "kafka", CACHE)
    server = ResonateServer.on_free_ports(
        tmp_path / "resonate", postgres=store, postgres_database=f"resonate_{uuid.uuid4().hex[:12]}"
    )
    broker.start()
    server.start()
    try:
        yield broker, server
    finally:
        server.stop()
        broker.stop()
