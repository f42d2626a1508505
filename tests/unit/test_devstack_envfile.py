"""`make up` and a `.env` of the user's own (copied from .env.example, say): the variables the stack
started that it lacks are added in a marked block, a variable it sets otherwise stops `make up`
before anything starts, and `make down` leaves the user's file as it was."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from devstack import envfile
from devstack.procs import StackError
from devstack.stack import Stack

REPO = Path(__file__).resolve().parents[2]
STACK_ENV = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "RESONATE_URL": "http://127.0.0.1:8001"}


def values(text: str) -> dict[str, str | None]:
    """What the services read from this .env (the same parser as their settings')."""
    return dotenv_values(stream=io.StringIO(text))


def test_a_copy_of_env_example_keeps_its_lines_and_gets_what_it_lacks() -> None:
    example = (REPO / ".env.example").read_text()
    merged = envfile.merge(example, STACK_ENV)
    assert merged.added == ["RESONATE_URL"]  # its KAFKA_BOOTSTRAP_SERVERS line is the stack's already
    assert merged.text.startswith(example)
    assert values(merged.text)["RESONATE_URL"] == "http://127.0.0.1:8001"  # durable, as make up says
    assert envfile.without_block(merged.text) == example


def test_without_a_env_the_file_is_the_block_alone() -> None:
    merged = envfile.merge("", STACK_ENV)
    assert merged.added == list(STACK_ENV)
    assert values(merged.text) == STACK_ENV
    assert merged.text.startswith(envfile.BEGIN) and merged.text.endswith(envfile.END)
    assert envfile.without_block(merged.text) == ""


def test_a_variable_set_otherwise_is_refused_and_named() -> None:
    with pytest.raises(StackError, match=r"KAFKA_BOOTSTRAP_SERVERS=broker:9092 \(the stack: 127.0.0.1:9092\)"):
        envfile.merge("LOG_LEVEL=DEBUG\nKAFKA_BOOTSTRAP_SERVERS=broker:9092\n", STACK_ENV)
    with pytest.raises(StackError, match=r"RESONATE_URL= \(the stack: http://127.0.0.1:8001\)"):
        envfile.merge("RESONATE_URL=\n", STACK_ENV)  # empty is set, too: the user chose local mode


def test_merging_again_changes_nothing_and_a_stale_block_is_replaced() -> None:
    once = envfile.merge("LOG_LEVEL=DEBUG", STACK_ENV)  # (no newline at the end)
    assert once.text.startswith("LOG_LEVEL=DEBUG\n" + envfile.BEGIN)
    assert envfile.merge(once.text, STACK_ENV) == once
    without_server = envfile.merge(once.text, {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
    assert "RESONATE_URL" not in values(without_server.text)  # no server now: no stale URL either


class Component:
    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True


@pytest.fixture
def stack(tmp_path, monkeypatch) -> tuple[Stack, Component]:
    component = Component()
    stack = Stack(tmp_path)
    monkeypatch.setattr(Stack, "components", lambda self: [component])
    monkeypatch.setattr(Stack, "env", lambda self: dict(STACK_ENV))
    return stack, component


def test_up_then_down_leaves_the_users_env_as_it_was(stack) -> None:
    stack, component = stack
    own = "# mine\nLOG_LEVEL=DEBUG\n# RESONATE_URL=http://127.0.0.1:8001\n"
    stack.env_file.write_text(own)
    assert stack.up() == (STACK_ENV, list(STACK_ENV))
    assert component.started
    assert values(stack.env_file.read_text()) == {"LOG_LEVEL": "DEBUG", **STACK_ENV}
    stack.down()
    assert stack.env_file.read_text() == own


def test_up_refuses_before_starting_anything_and_down_deletes_a_env_it_wrote(stack) -> None:
    stack, component = stack
    stack.env_file.write_text("RESONATE_URL=http://elsewhere:8001\n")
    with pytest.raises(StackError, match="RESONATE_URL=http://elsewhere:8001 .*nothing was started"):
        stack.up()
    assert not component.started
    assert stack.env_file.read_text() == "RESONATE_URL=http://elsewhere:8001\n"

    stack.env_file.unlink()
    stack.up()
    stack.down()
    assert not stack.env_file.exists()
