"""Tokens for a Resonate server started with JWT auth (``devstack.resonate.ServerAuth``).

The server (v0.9.8) verifies a token's signature with its public key, requires ``exp`` (and
``iss``/``aud`` when it was given them; ``aud`` as a JSON array), and then authorizes by claims: ``role: "admin"`` may do
anything; otherwise ``prefix`` must start every id a request names (``""``: every id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.resonate import ServerAuth

ALGORITHM = "ES256"  # an EC P-256 key; the server accepts ES256 and ES384 for EC keys


@dataclass(frozen=True)
class TokenIssuer:
    """A key pair: its public half in a PEM file for the server, its private half signs tokens."""

    private_key: ec.EllipticCurvePrivateKey
    public_key_file: Path
    iss: str | None = None
    aud: str | None = None

    @classmethod
    def new(cls, folder: Path, name: str = "resonate-auth", iss: str | None = None, aud: str | None = None) -> TokenIssuer:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        public = folder / f"{name}.pub.pem"
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(key, public, iss, aud)

    def server_auth(self) -> ServerAuth:
        """How a server verifies this issuer's tokens."""
        return ServerAuth(self.public_key_file, iss=self.iss, aud=self.aud)

    def token(self, role: str | None = "admin", expires_in: float = 3600, **claims: object) -> str:
        """A signed token; ``expires_in`` < 0 makes one that has expired (beyond the server's 60 s
        leeway when below -60). Further claims (``prefix=...``, or ``iss``/``aud`` to override
        the issuer's) are added as given."""
        now = int(time.time())
        payload: dict[str, object] = {"iat": now, "exp": now + int(expires_in), "sub": "tombstone-processor"}
        if role is not None:
            payload["role"] = role
        if self.iss is not None:
            payload["iss"] = self.iss
        if self.aud is not None:
            payload["aud"] = [self.aud]  # a list: v0.9.8 refuses a token whose aud is a bare string
        payload.update(claims)
        return jwt.encode(payload, self.private_key, algorithm=ALGORITHM)
