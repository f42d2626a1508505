"""Certificates for the TLS tests, made on the spot: a private CA, a server certificate for the
loopback broker, client certificates (one valid, one expired) and a second, unrelated CA.

Everything is PEM, as both librdkafka (``ssl.*.location``) and Kafka 4 (``ssl.keystore.type=PEM``)
read it; keys are unencrypted PKCS#8 unless a password is given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    certificate: Path
    key: Path


@dataclass
class CertificateAuthority:
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    folder: Path

    @classmethod
    def create(cls, folder: Path, name: str) -> CertificateAuthority:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        authority = cls(name, key, certificate, folder)
        authority.bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    @property
    def bundle(self) -> Path:
        """The CA certificate alone: what a client's ``KAFKA_SSL_CA_LOCATION`` points at."""
        return self.folder / f"{self.name}-ca.pem"

    def server(self, name: str = "broker", dns_names: tuple[str, ...] = ()) -> Issued:
        """A server certificate for the loopback broker (SAN: localhost and 127.0.0.1), and for
        ``dns_names`` (a broker in a cluster)."""
        sans = [x509.DNSName(n) for n in (*LOOPBACK_NAMES, *dns_names)] + [
            x509.IPAddress(ipaddress.ip_address(a)) for a in LOOPBACK_ADDRESSES
        ]
        return self._issue(name, ExtendedKeyUsageOID.SERVER_AUTH, sans=sans)

    def client(
        self, name: str = "client", expired: bool = False, key_password: str | None = None
    ) -> Issued:
        """A client certificate (mTLS); ``expired``: its validity ended yesterday."""
        return self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, expired=expired, key_password=key_password)

    def _issue(
        self,
        name: str,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
        expired: bool = False,
        key_password: str | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        if expired:
            valid = (now - dt.timedelta(days=30), now - dt.timedelta(days=1))
        else:
            valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.folder / f"{name}.pem", self.folder / f"{name}-key.pem")
        # the chain a server presents: its own certificate, then the CA's
        issued.certificate.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        encryption = (
            serialization.BestAvailableEncryption(key_password.encode())
            if key_password
            else serialization.NoEncryption()
        )
        issued.key.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        )
        issued.key.chmod(0o600)
        return issued


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tombstone pipeline tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
