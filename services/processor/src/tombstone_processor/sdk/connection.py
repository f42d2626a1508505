"""The SDK's HTTP connection, made to tell a refused token from a refused request.

resonate-sdk 0.8.1's ``HttpConnection.send`` returns every answer of the server, a 401 or 403
included, as the answer to the request; its callers then treat it as a refusal of that request
(a hand-off refused three times dead-letters its tombstone). A refused *token* is not about the
request: :class:`TokenCheckedConnection` reports it and raises it as a ``ConnectorError`` (a
failure of the way to the server, which the SDK's callers retry until the processor stops).
"""

from __future__ import annotations

import json
from typing import Protocol

from resonate.connections import HttpConnection
from resonate.error import ConnectorError


class TokenCheck(Protocol):
    def refused_token(self, status: int) -> None: ...


#: What the server says about this processor's token, not about a request (resonate v0.9.8: 401
#: for a missing or unverifiable token, 403 for a valid one whose claims do not cover the id).
TOKEN_REFUSALS = {401: "Unauthorized", 403: "Forbidden"}
#: A 4xx status as an answer's JSON spells it (the server writes no spaces; a proxy might): only
#: answers that hold one are decoded here.
_REFUSAL_MARKS = ('"status":40', '"status": 40')


class TokenRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the server refused this processor's token ({status} {TOKEN_REFUSALS[status]})")
        self.status = status


class TokenCheckedConnection(HttpConnection):
    """The SDK's HTTP connection, which reports a 401 or 403 of the server to ``check`` and raises
    it as a :class:`ConnectorError` (a failure of the way to the server, which callers retry until
    the processor has stopped) instead of returning it (a refusal of the request, which would end
    in the dead-letter topic)."""

    def __init__(self, url: str, auth: str | None, check: TokenCheck) -> None:
        super().__init__(url=url, auth=auth)
        self._check = check

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        answer = await super().send(req, headers)
        if any(mark in answer for mark in _REFUSAL_MARKS):  # a 4xx: rare, decoded only then
            try:
                status = json.loads(answer)["head"]["status"]
            except (ValueError, TypeError, KeyError):
                return answer  # the SDK reports what it cannot read
            if status in TOKEN_REFUSALS:
                self._check.refused_token(status)
                raise ConnectorError(TokenRefused(status))
        return answer
