"""Log configuration: the SDK's per-step chatter is off at INFO and back at DEBUG."""

from __future__ import annotations

import logging

import pytest

from tombstone_common.logs import configure_logging
from tombstone_common.settings import BaseServiceSettings


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = logging.getLogger("resonate.validation")
    chatty_level = chatty.level
    yield
    root.handlers[:], root.level = handlers, level
    chatty.setLevel(chatty_level)


def _emit(capsys) -> str:
    logging.getLogger("resonate.validation").info("promise_create_request promise_id=x:1 invocation=run")
    logging.getLogger("resonate.core").warning("something an operator should see")
    return capsys.readouterr().err


def test_sdk_per_step_lines_are_quiet_at_info(restore_logging, capsys):
    configure_logging(BaseServiceSettings(log_level="INFO", log_format="json", _env_file=None), "test")
    err = _emit(capsys)
    assert "promise_create_request" not in err
    assert "something an operator should see" in err


def test_sdk_per_step_lines_return_at_debug(restore_logging, capsys):
    configure_logging(BaseServiceSettings(log_level="DEBUG", log_format="json", _env_file=None), "test")
    assert "promise_create_request" in _emit(capsys)
