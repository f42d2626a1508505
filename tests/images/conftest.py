from __future__ import annotations

import pytest

from tests.images.docker import SERVICES, docker_problem, image_name, missing_images


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Service name -> image. The images are built before the tests (`make test` runs
    `python -m tests.images.docker`; `make images` builds them too), never inside one."""
    if problem := docker_problem():
        pytest.skip(f"image tests need Docker: {problem}")
    if missing := missing_images():
        pytest.skip(f"no image for {', '.join(missing)}: `make images` (or `make test`) builds them")
    return {service: image_name(service) for service in SERVICES}
