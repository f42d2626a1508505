"""A Resonate server that requires tokens (JWT, `resonate serve --auth-publickey`): the processor
with the right token works end to end; one without it, or with a token the server refuses, stops
at once with one line naming the cause, also when the refusal comes while it runs; and the token
never shows in its logs, its error line, /readyz or its settings."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from devstack.procs import http_get, wait_until
from devstack.resonate import ResonateServer
from harness.kafka import read_all, read_until
from harness.processes import BIN, ProcessorProcess, clean_environ
from harness.topics import as_fields, create_topics, send_tombstones
from tests.conftest import own_resonate_server
from tests.support.jwt import TokenIssuer
from tests.support.pipeline import committed
from tests.support.processes import durable_env, the_error_line
from tombstone_common.messages import Tombstone
from tombstone_processor.settings import ProcessorSettings

pytestmark = pytest.mark.durable

ISSUER = "tombstone-tests"
AUDIENCE = "resonate-server"
#: A processor refused at start exits within this (Python's start-up included, on a busy machine).
REFUSED_EXIT_SECONDS = 45


def auth_server(home: Path, issuer: TokenIssuer, request) -> ResonateServer:
    return own_resonate_server(home, request.getfixturevalue("resonate_store"), auth=issuer.server_auth())


@pytest.fixture(scope="module")
def issuer(tmp_path_factory) -> TokenIssuer:
    return TokenIssuer.new(tmp_path_factory.mktemp("keys"), iss=ISSUER, aud=AUDIENCE)


@pytest.fixture(scope="module")
def server(issuer, tmp_path_factory, request) -> ResonateServer:
    """One server for the module that checks the signature, ``iss`` and ``aud`` of every token."""
    server = auth_server(tmp_path_factory.mktemp("resonate-auth"), issuer, request)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def env_for(kafka, server, names, tmp_path, token: str | None, **extra: str) -> dict[str, str]:
    env = durable_env(
        SimpleNamespace(bootstrap_servers=kafka.bootstrap), server, names, tmp_path,
        DELETE_BATCH_INTERVAL_SECONDS="0.1", **extra,
    )
    if token is not None:
        env["RESONATE_TOKEN"] = token
    return env


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        env={**clean_environ(), **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


def assert_secret(token: str, **texts: str | bytes) -> None:
    """Neither the token nor its signature (the part that makes it a credential) is in any text."""
    signature = token.rsplit(".", 1)[1]
    for where, text in texts.items():
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        assert token not in text and signature not in text, f"the token shows in {where}"


def test_a_processor_with_the_token_processes_tombstones_end_to_end_and_never_shows_it(
    server, issuer, kafka, names, uid, tmp_path
):
    token = issuer.token()
    # LOG_LEVEL=DEBUG: the most an operator can make the processor say
    env = env_for(kafka, server, names, tmp_path, token, LOG_LEVEL="DEBUG")
    setup = run(["setup-topics"], env, tmp_path)
    assert setup.returncode == 0, setup.stderr
    processor = ProcessorProcess("a", env, tmp_path)
    processor.start()
    try:
        readyz = http_get(processor.url + "/readyz")
        produced = run(["record-producer", "-n", "3", "--batches", "1", "--prefix", f"auth{uid}", "--print-ids"], env, tmp_path)
        assert produced.returncode == 0, produced.stderr
        ids = produced.stdout.split()
        assert len(ids) == 3
        records = read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: {x.key for x in r} >= set(ids), 60)
        metrics = processor.metrics()
    finally:
        status = processor.terminate()
    assert status == 0, processor.process.tail()
    assert readyz[0] == 200, readyz
    assert Counter(r.key for r in records) == Counter(ids)
    assert read_all(kafka.bootstrap, names["TOPIC_DLQ"]) == []
    settings = ProcessorSettings(_env_file=None, **as_fields(env))
    assert settings.resonate_token.get_secret_value() == token
    assert_secret(
        token,
        log=processor.process.log_file.read_text(),
        readyz=readyz[1],
        metrics=metrics,
        settings_repr=repr(settings),
        settings_str=str(settings),
        settings_json=settings.model_dump_json(),
        settings_dict=str(settings.model_dump()),
    )


def other_key_token(tmp_path: Path) -> str:
    return TokenIssuer.new(tmp_path / "other-keys", iss=ISSUER, aud=AUDIENCE).token()


REFUSED_TOKENS = {
    # case: (token, what the error line says)
    "none": (lambda issuer, tmp_path: None, "requires a token (401 Unauthorized) and RESONATE_TOKEN is not set"),
    "signed by another key": (lambda issuer, tmp_path: other_key_token(tmp_path), "refused the token (401 Unauthorized"),
    # beyond the server's leeway of 60 s
    "expired": (lambda issuer, tmp_path: issuer.token(expires_in=-3600), "refused the token (401 Unauthorized"),
    "for another audience": (lambda issuer, tmp_path: issuer.token(aud=["another-server"]), "refused the token (401 Unauthorized"),
    "without role or prefix": (lambda issuer, tmp_path: issuer.token(role=None), "forbids this processor's requests (403 Forbidden)"),
}


@pytest.mark.parametrize("case", list(REFUSED_TOKENS))
def test_a_refused_token_stops_the_processor_before_it_consumes_with_one_line_naming_the_cause(
    case, server, issuer, kafka, names, uid, tmp_path
):
    make_token, cause = REFUSED_TOKENS[case]
    token = make_token(issuer, tmp_path)
    create_topics(kafka.bootstrap, names, partitions=1)
    send_tombstones(kafka.bootstrap, names, [Tombstone(id=f"refused{uid}-1", batches=1)])
    env = {**env_for(kafka, server, names, tmp_path, token), "PROCESSOR_HTTP_PORT": "0", "LOG_FORMAT": "json"}
    began = time.monotonic()
    result = run(["record-processor"], env, tmp_path, timeout=REFUSED_EXIT_SECONDS + 30)
    took = time.monotonic() - began
    line = the_error_line(result.stderr)
    print(f"{case}: exit {result.returncode} after {took:.1f}s: {line}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert line.startswith(f"error: the Resonate server at {server.url} ") and cause in line
    assert "RESONATE_TOKEN" in line
    assert "Traceback" not in result.stderr
    assert took < REFUSED_EXIT_SECONDS, "refused at start: no retry loop"
    assert committed(kafka.bootstrap, names) == {0: -1001}, "nothing consumed, nothing committed"
    if token is not None:
        assert_secret(token, stderr=result.stderr, stdout=result.stdout)


def test_a_token_refused_while_the_processor_runs_stops_it_and_nothing_is_dead_lettered_or_lost(
    kafka, issuer, names, uid, tmp_path, request
):
    """The server's key changes under a running processor (a rotation without the processor's
    token): its next request is refused, it stops with the line, the records it had not handed
    off stay uncommitted (not dead-lettered), and a processor with a new token takes them."""
    own = auth_server(tmp_path / "resonate", issuer, request)
    own.start()
    try:
        create_topics(kafka.bootstrap, names, partitions=1)
        env = env_for(kafka, own, names, tmp_path, issuer.token())
        processor = ProcessorProcess("before", env, tmp_path)
        processor.start()
        try:
            first = Tombstone(id=f"rotation{uid}-1", batches=1)
            send_tombstones(kafka.bootstrap, names, [first])
            read_until(kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: len(r) >= 1, 60)
            wait_until(lambda: committed(kafka.bootstrap, names) == {0: 1}, 30, "the first record committed")

            rotated = TokenIssuer.new(tmp_path / "rotated", iss=ISSUER, aud=AUDIENCE)
            own.stop()
            own.auth = rotated.server_auth()
            own.start()
            later = [Tombstone(id=f"rotation{uid}-{n}", batches=1) for n in (2, 3)]
            send_tombstones(kafka.bootstrap, names, later)
            wait_until(lambda: processor.process.returncode is not None, 60, "the processor stopped by itself")
        finally:
            if processor.process.returncode is None:
                processor.terminate()
        assert processor.process.returncode == 2, processor.process.tail(40)
        line = the_error_line(processor.process.log_file.read_text())
        assert "refused the token (401 Unauthorized" in line, line
        assert committed(kafka.bootstrap, names) == {0: 1}, "the refused records are not committed"
        assert read_all(kafka.bootstrap, names["TOPIC_DLQ"]) == [], "nor dead-lettered"

        again = ProcessorProcess("after", {**env, "RESONATE_TOKEN": rotated.token()}, tmp_path)
        again.start()
        try:
            records = read_until(
                kafka.bootstrap, names["TOPIC_PROCESSED"], lambda r: {x.key for x in r} >= {t.id for t in later}, 60
            )
        finally:
            assert again.terminate() == 0
        assert Counter(r.key for r in records) == Counter([first.id, *(t.id for t in later)])
    finally:
        own.stop()
