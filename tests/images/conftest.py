from __future__ import annotations

import os

import pytest

from tests.images.docker import SERVICES, build_images, docker_problem, image_exists, image_name


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Service name -> image, built with scripts/images.sh when missing (or IMAGES_REBUILD=1)."""
    if problem := docker_problem():
        pytest.skip(f"image tests need Docker: {problem}")
    names = {service: image_name(service) for service in SERVICES}
    missing = [s for s, image in names.items() if not image_exists(image)]
    if os.environ.get("IMAGES_REBUILD") == "1":
        missing = list(SERVICES)
    if missing:
        build_images(missing)
    return names
