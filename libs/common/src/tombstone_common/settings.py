"""Configuration read from the environment, shared by every service.

Field names spell out the environment variable (``kafka_bootstrap_servers`` is read from
``KAFKA_BOOTSTRAP_SERVERS``), so the README's configuration table and ``.env.example`` map
one-to-one onto these classes. A service composes the mixins it needs and loads them with
:func:`load_settings`, which turns a validation failure into one readable line and exit code 2.
"""

from __future__ import annotations

import os
import sys
from typing import Literal, NoReturn

from dotenv import load_dotenv
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
EndpointIdentification = Literal["https", "none"]
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_FIELDS = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
TLS_FIELDS = (
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
    "kafka_ssl_endpoint_identification",
)
TLS_FILES = ("kafka_ssl_ca_location", "kafka_ssl_certificate_location", "kafka_ssl_key_location")


class BaseServiceSettings(BaseSettings):
    """Read from the environment (which :func:`load_settings` completes from ``.env``)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the service."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json` lines, `console` text, or `auto` (console on a terminal)."
    )


class KafkaSettings(BaseServiceSettings):
    kafka_bootstrap_servers: str = Field(
        description="Broker list, `host:port[,host:port…]` (required)."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="SASL mechanism when the protocol is `SASL_*`."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_ca_location: str | None = Field(
        None, description="PEM bundle of the CAs that sign the brokers' certificates (unset = the system's CAs)."
    )
    kafka_ssl_certificate_location: str | None = Field(
        None, description="Client certificate (PEM) for brokers that require one (mTLS); with the key."
    )
    kafka_ssl_key_location: str | None = Field(
        None, description="The client certificate's private key (PEM); with the certificate."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key."
    )
    kafka_ssl_endpoint_identification: EndpointIdentification | None = Field(
        None,
        description=(
            "`https` (unset): the broker's certificate must name the host connected to; "
            "`none`: not checked."
        ),
    )

    @field_validator(*TLS_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty variable (a template that renders every name) is an unset one."""
        if isinstance(value, str) and not value.strip():
            return None
        if info.field_name == "kafka_ssl_endpoint_identification" and isinstance(value, str):
            return value.strip().lower()
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("must list at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        """Every SASL/TLS combination is checked here, so a client never starts half-configured."""
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL"):
            for name in SASL_FIELDS:
                if not _given(getattr(self, name)):
                    raise ValueError(f"{name.upper()} is required with KAFKA_SECURITY_PROTOCOL={protocol}")
        else:
            for name in SASL_FIELDS:
                if _given(getattr(self, name)):
                    raise ValueError(
                        f"{name.upper()} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL "
                        "(use SASL_PLAINTEXT or SASL_SSL)"
                    )
        self._check_tls()
        return self

    def _check_tls(self) -> None:
        protocol = self.kafka_security_protocol
        if protocol not in TLS_PROTOCOLS:
            for name in TLS_FIELDS:
                if _given(getattr(self, name)):
                    raise ValueError(
                        f"{name.upper()} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS "
                        "(use SSL or SASL_SSL)"
                    )
            return
        certificate, key = self.kafka_ssl_certificate_location, self.kafka_ssl_key_location
        if bool(certificate) != bool(key):
            given, missing = (
                ("KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION") if certificate
                else ("KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION")
            )
            raise ValueError(f"{given} is set without {missing}: a client certificate needs both")
        if _given(self.kafka_ssl_key_password) and not key:
            raise ValueError("KAFKA_SSL_KEY_PASSWORD is set without KAFKA_SSL_KEY_LOCATION")
        for name in TLS_FILES:
            path = getattr(self, name)
            if path and (problem := _unreadable(path)):
                raise ValueError(f"{name.upper()}={path}: {problem}")

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings common to producers, consumers and admin clients. Holds the
        secrets in clear: hand it to librdkafka, never to a log."""
        config = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in TLS_PROTOCOLS:
            config["ssl.endpoint.identification.algorithm"] = self.kafka_ssl_endpoint_identification or "https"
            if self.kafka_ssl_ca_location:
                config["ssl.ca.location"] = self.kafka_ssl_ca_location
            if self.kafka_ssl_certificate_location:
                config["ssl.certificate.location"] = self.kafka_ssl_certificate_location
                config["ssl.key.location"] = self.kafka_ssl_key_location
            if _given(self.kafka_ssl_key_password):
                config["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return config


def _given(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value)


def _unreadable(path: str) -> str | None:
    """Why a client could not read the PEM file at ``path``; None when it can."""
    if not os.path.exists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a file"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"not readable ({exc.strerror})"
    return None


class TopicSettings(BaseServiceSettings):
    topic_tombstones: str = Field("tombstones", description="Input topic.")
    topic_processed: str = Field("processed", description="Completion records (compacted).")
    topic_dlq: str = Field("tombstones.dlq", description="Dead-letter topic for bad input.")


class PipelineSettings(KafkaSettings, TopicSettings):
    """What every service of the pipeline needs: the broker and the topic names."""


def _describe(error: dict) -> str:
    name = ".".join(str(part) for part in error["loc"]).upper()
    if error["type"] == "missing":
        return f"{name} is required"
    if not name:  # a check across variables: its message names them
        return str(error["ctx"]["error"]) if "error" in error.get("ctx", {}) else error["msg"]
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return f"{name}: {error['ctx']['error']}"  # without pydantic's "Value error, "
    return f"{name}: {error['msg']}"


#: For every command's --help: options are few, configuration is the environment.
CONFIGURATION_HELP = (
    "Configured by environment variables (KAFKA_BOOTSTRAP_SERVERS, RESONATE_URL, TOPIC_*, …), "
    "read from the environment or a .env file in the working directory; every variable is listed "
    "in the README's Configuration section and in .env.example."
)


def load_settings[S: BaseSettings](cls: type[S], **overrides: object) -> S:
    """Load ``cls`` from the environment, or exit 2 with one line naming each bad variable.

    A ``.env`` file in the working directory is loaded into the environment first (real
    variables win), so libraries that read the environment themselves (OpenTelemetry's
    ``OTEL_*``) see its values too."""
    load_dotenv(".env", override=False)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        fail(f"invalid configuration: {problems}")


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
