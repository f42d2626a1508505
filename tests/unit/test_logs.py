"""Log configuration: the SDK's per-step chatter is off at INFO and back at DEBUG."""

from __future__ import annotations

import logging

import pytest
import structlog

from tombstone_common.logs import configure_logging
from tombstone_common.settings import BaseServiceSettings

SDK_STEP_LINES = logging.getLogger("resonate.validation")  # promise create/settle, per step


@pytest.fixture
def configured():
    """configure_logging for one test; the process-wide logging set-up is put back after."""
    root = logging.getLogger()
    handlers, level, sdk_level = root.handlers[:], root.level, SDK_STEP_LINES.level

    def configure(log_level: str) -> None:
        configure_logging(BaseServiceSettings(log_level=log_level, log_format="json", _env_file=None), "test")

    yield configure
    root.handlers[:] = handlers
    root.setLevel(level)
    SDK_STEP_LINES.setLevel(sdk_level)
    structlog.reset_defaults()


def test_sdk_per_step_lines_are_quiet_at_info(configured):
    configured("INFO")
    assert not SDK_STEP_LINES.isEnabledFor(logging.INFO)
    assert logging.getLogger("resonate.core").isEnabledFor(logging.WARNING)


def test_sdk_per_step_lines_return_at_debug(configured):
    configured("DEBUG")
    assert SDK_STEP_LINES.isEnabledFor(logging.INFO)
