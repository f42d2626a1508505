from __future__ import annotations

import pytest

from tests.chart.manifests import HelmUnavailable, helm_binary


@pytest.fixture(scope="session", autouse=True)
def helm() -> str:
    try:
        return helm_binary()
    except HelmUnavailable as exc:
        pytest.skip(f"chart tests need helm: {exc}")
