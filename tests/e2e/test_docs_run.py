"""The README and docs/kubernetes.md work as written: their marked shell blocks run, in order, in one
shell, against the real local stack, each with the outcome the text promises
(tests/support/doc_steps.py says how blocks are marked and run).

They run in a checkout of their own (the repository's files linked into a temporary folder, with
its own ``.stack`` and ``.env``), so a stack the developer runs in the real checkout is neither
used nor stopped. Its ``.env`` starts as a copy of ``.env.example``, as a user who followed that
file's first line has it: ``make up`` must still give the processor the server it started.
The stack's server uses the durable tier's store (``TEST_RESONATE_STORAGE``, passed on as
``STACK_RESONATE_STORAGE``): CI's second run of that tier runs the README on PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.jaeger import Jaeger
from devstack.procs import port_open
from devstack.resonate import server_binary
from tests.chart.manifests import HelmUnavailable, helm_binary
from tests.conftest import NO_SERVER, chosen_storage
from tests.support.doc_steps import REPO, ShellSession, failure, steps, variables_in_code

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

STEP_SECONDS = 300
# What the README's commands use: make up's broker and server, the processors' probes (the
# default, and the two of "Watch it recover").
STACK_PORTS = (9092, 9093, 8001, 9091, 8080, 8081, 8082)
# The test's environment but what would change the documented commands' behaviour: the pipeline's
# configuration (a reader's shell has none set; .env is what the README is about) and make's own.
NOT_PASSED_ON = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}


def readme_needs() -> None:
    if server_binary() is None:
        pytest.skip(NO_SERVER)
    ports = list(STACK_PORTS)
    if (REPO / ".cache" / "bin" / "jaeger").exists():  # make up starts it on its default ports
        ports += Jaeger(REPO / ".stack" / "jaeger", REPO).ports.values()
    taken = [port for port in ports if port_open(port)]
    if taken:
        pytest.skip(f"the README's commands use fixed loopback ports and {taken} are taken "
                    "(a `make up` running here?)")


def kubernetes_doc_needs() -> None:
    try:
        helm_binary()
    except HelmUnavailable as exc:
        pytest.skip(f"docs/kubernetes.md's local checks need helm: {exc}")


@pytest.fixture
def checkout(open_folder) -> Path:
    root = open_folder / "checkout"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in {".env", ".stack", ".git", ".pytest_cache"}:
            (root / entry.name).symlink_to(entry)
    shutil.copy(REPO / ".env.example", root / ".env")
    yield root
    # whatever a failed step left running (a passing run ends with `make down`)
    subprocess.run([str(root / ".venv" / "bin" / "devstack"), "down"], cwd=root, capture_output=True,
                   timeout=120, check=False)


@pytest.mark.parametrize("doc, needs", [
    pytest.param("README.md", readme_needs, marks=pytest.mark.durable),
    ("docs/kubernetes.md", kubernetes_doc_needs),
])
def test_the_documented_commands_work_as_written(doc: str, needs, checkout: Path, tmp_path: Path) -> None:
    needs()
    documented = steps(REPO / doc)
    assert documented, f"{doc} marks no block to run"
    dropped = NOT_PASSED_ON | variables_in_code()
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    env["STACK_RESONATE_STORAGE"] = chosen_storage()
    session = ShellSession(checkout, env, tmp_path)
    try:
        for step in documented:
            outcome = session.run(step, STEP_SECONDS)
            if not (outcome.ok and all(text in outcome.output for text in step.expect)):
                pytest.fail(failure(step, outcome), pytrace=False)
    finally:
        session.close()
    if doc == "README.md":  # make down took back what make up added to the user's .env
        assert (checkout / ".env").read_text() == (REPO / ".env.example").read_text()
