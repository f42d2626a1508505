"""JWT auth between the processor and the Resonate server: the server's flags, its key, the token."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import NO_SERVER

from tests.chart.manifests import env_of, main_container, render, workload, workloads
from tests.chart.test_kafka_tls import file_source

AUTH = ["resonate.auth.enabled=true", "resonate.auth.existingSecret=resonate-jwt"]


def server_args(docs) -> list[str]:
    return main_container(workload(docs, "resonate"))["args"]


@functools.cache
def server_flags() -> set[str] | None:
    """The options `resonate serve --help` lists, from the server binary the durable tests use
    (RESONATE_SERVER_BIN or `resonate` on PATH); None without one."""
    binary = os.environ.get("RESONATE_SERVER_BIN") or shutil.which("resonate")
    if not binary:
        return None
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", help_text, re.MULTILINE))


def unknown_flags(args: list[str], known: set[str]) -> list[str]:
    return [a for a in args if a.startswith("--") and a.split("=", 1)[0] not in known]


def test_the_server_verifies_tokens_with_the_public_key_from_the_secret() -> None:
    docs = render("default", sets=[*AUTH, "resonate.auth.publicKeyKey=jwt.pub"])
    server = workload(docs, "resonate")
    (flag,) = [a for a in server_args(docs) if a.startswith("--auth-publickey=")]
    path = flag.split("=", 1)[1]
    assert file_source(server, main_container(server), path) == ("resonate-jwt", "jwt.pub")
    # the processor sends the token from the same Secret, and only the processor has it
    env = env_of(main_container(workload(docs, "processor")))
    assert env["RESONATE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "resonate-jwt", "key": "token"}
    holders = [str(w) for w in workloads(docs) for c in w.containers() if "RESONATE_TOKEN" in env_of(c)]
    assert holders == [str(workload(docs, "processor"))]


def test_issuer_and_audience_become_required_claims() -> None:
    args = server_args(render("default", sets=[*AUTH, "resonate.auth.issuer=https://issuer.example",
                                               "resonate.auth.audience=tombstone-pipeline"]))
    assert "--auth-iss=https://issuer.example" in args and "--auth-aud=tombstone-pipeline" in args
    plain = server_args(render("default", sets=AUTH))
    assert not [a for a in plain if a.startswith(("--auth-iss", "--auth-aud"))]


def test_no_auth_by_default() -> None:
    docs = render("default", sets=["resonate.auth.issuer=ignored"])
    assert not [a for a in server_args(docs) if a.startswith("--auth")]
    assert "RESONATE_TOKEN" not in env_of(main_container(workload(docs, "processor")))
    assert not [v for v in workload(docs, "resonate").spec["volumes"] if v["name"] == "auth"]


def test_an_external_server_still_gets_the_token() -> None:
    docs = render("default", sets=[*AUTH, "resonate.enabled=false", "resonate.url=https://resonate.example"])
    env = env_of(main_container(workload(docs, "processor")))
    assert env["RESONATE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "resonate-jwt"


@pytest.mark.parametrize("values", ["default", "full", "postgres"])
def test_the_server_accepts_every_flag_the_chart_passes(values: str) -> None:
    known = server_flags()
    if known is None:
        pytest.skip(NO_SERVER)  # the one skip CI allows
    sets = [*AUTH, "resonate.auth.issuer=i", "resonate.auth.audience=a"]
    args = server_args(render(values, sets=sets))
    assert args[0] == "serve"
    assert {"--auth-publickey", "--auth-iss", "--auth-aud"} <= {a.split("=")[0] for a in args}
    assert not unknown_flags(args, known), f"resonate serve does not accept {unknown_flags(args, known)}"


def test_the_flag_check_catches_an_unknown_flag() -> None:
    assert unknown_flags(["serve", "--auth-publickey=/k", "--auth-jwks-url=x"],
                         {"--auth-publickey"}) == ["--auth-jwks-url=x"]
