"""A 401 or 403 of the Resonate server stops the processor instead of being taken as a refusal of
one request (server_check.py). Against a real server with JWT auth: tests/durable/test_server_auth.py."""

from __future__ import annotations

import json

import pytest
from resonate.connections import HttpConnection
from resonate.error import ConnectorError

from tombstone_processor.failures import is_transient
from tombstone_processor.sdk.connection import TokenCheckedConnection
from tombstone_processor.server_check import ServerCheck, token_refused_line


def answer(status: int, spaced: bool = False) -> str:
    envelope = {"kind": "promise.create", "head": {"corrId": "1", "status": status, "version": "2025-01-15"}, "data": "x"}
    return json.dumps(envelope) if spaced else json.dumps(envelope, separators=(",", ":"))


@pytest.fixture
def served(monkeypatch):
    """What the server answers to every request of a TokenCheckedConnection."""
    reply = {"text": answer(200)}

    async def send(self, req, headers=None):
        return reply["text"]

    monkeypatch.setattr(HttpConnection, "send", send)
    return reply


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("spaced", [False, True])
async def test_a_token_refusal_is_reported_once_and_raised_as_a_transient_connector_error(served, status, spaced):
    stops: list[int] = []
    check = ServerCheck(on_token_refused=stops.append)
    connection = TokenCheckedConnection("http://127.0.0.1:1", "t", check)
    served["text"] = answer(status, spaced)
    for _ in range(2):
        with pytest.raises(ConnectorError) as raised:
            await connection.send("{}")
        assert is_transient(raised.value), "retried (not dead-lettered) until the processor has stopped"
    assert stops == [status] and check.token_refused == status
    assert str(status) in check.status


@pytest.mark.parametrize("status", [200, 201, 400, 404, 409, 429, 500])
async def test_other_answers_pass_through(served, status):
    check = ServerCheck(on_token_refused=lambda status: pytest.fail("not a token refusal"))
    served["text"] = answer(status)
    assert await TokenCheckedConnection("http://127.0.0.1:1", None, check).send("{}") == served["text"]
    assert check.token_refused is None


def test_the_line_names_the_cause_and_the_variable():
    url = "http://resonate:8001"
    assert "requires a token (401 Unauthorized) and RESONATE_TOKEN is not set" in token_refused_line(url, 401, False)
    assert "refused the token (401 Unauthorized" in token_refused_line(url, 401, True)
    assert "(403 Forbidden)" in token_refused_line(url, 403, True)
    for status, given in ((401, False), (401, True), (403, True)):
        line = token_refused_line(url, status, given)
        assert url in line and "RESONATE_TOKEN" in line and "\n" not in line
