"""The shell blocks of the README and docs/kubernetes.md, as a test runs them.

Parsing the Markdown and reading the markers is pytest-codeblocks' work (``extract_from_file``):
an HTML comment ``<!--pytest.mark.…-->`` on the line before a block, invisible on GitHub, marks
it. Two markers are used:

* ``<!--pytest.mark.doc_step(expect=[...], wait_until='...')-->``: the test runs the block, in
  the order of the document; every command in it must succeed and its output (stdout and stderr)
  must contain each ``expect`` string. ``wait_until`` is a shell condition the test waits for
  (with a deadline) before the block, where a reader would take a moment first.
* ``<!--pytest.mark.skip(reason="...")-->``: not run, and the reason says why (a cluster, minutes
  of build, the command that runs these tests).

pytest-codeblocks runs each block in a shell of its own; the documents' blocks depend on each
other (a processor started with ``&``, ``$ID`` from an earlier block), so :class:`ShellSession`
runs them one after the other in one bash, as a reader types them into one terminal.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_codeblocks import extract_from_file

from devstack.postgres import STORAGE_VARIABLE
from tombstone_common.settings import PipelineSettings
from tombstone_processor.settings import AdminSettings, ProcessorSettings
from tombstone_topic_init.topics import TopicInitSettings

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", REPO / "docs" / "kubernetes.md")
SHELLS = {"sh", "bash"}
WAIT_SECONDS = 120  # for a wait_until condition
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"}
LOCAL_STACK = {STORAGE_VARIABLE}  # read by `make up` / `make demo`, not by the services


def variables_in_code() -> set[str]:
    """Every variable the services and the local stack read: the README's configuration table."""
    names = set()
    for settings in (PipelineSettings, TopicInitSettings, ProcessorSettings, AdminSettings):
        names |= {field.upper() for field in settings.model_fields}
    return names | OTEL | LOCAL_STACK


@dataclass(frozen=True)
class Step:
    doc: Path
    line: int
    code: str
    expect: tuple[str, ...] = ()
    wait_until: str | None = None

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}, the block at line {self.line}"


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    code: str
    marks: tuple[pytest.Mark, ...]

    def mark(self, name: str) -> pytest.Mark | None:
        return next((mark for mark in self.marks if mark.name == name), None)


def shell_blocks(doc: Path) -> list[Block]:
    """The document's ``sh``/``bash`` blocks with their markers."""
    return [
        Block(doc, block.lineno, block.code, tuple(eval(mark, {"pytest": pytest}).mark for mark in block.marks))
        for block in extract_from_file(doc)
        if block.syntax in SHELLS
    ]


def steps(doc: Path) -> list[Step]:
    """The blocks a test runs, in order."""
    found = []
    for block in shell_blocks(doc):
        mark = block.mark("doc_step")
        if mark is not None:
            expect = mark.kwargs.get("expect", ())
            found.append(Step(doc, block.line, block.code, (expect,) if isinstance(expect, str) else tuple(expect),
                              mark.kwargs.get("wait_until")))
    return found


def unaccounted(doc: Path) -> list[str]:
    """Shell blocks that neither run in the test nor say why not."""
    return [
        f"{doc.relative_to(REPO)}:{block.line}: {block.code.splitlines()[0]}"
        for block in shell_blocks(doc)
        if block.mark("doc_step") is None
        and not ((skip := block.mark("skip")) is not None and skip.kwargs.get("reason"))
    ]


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: the block did not finish before its deadline
    failed: str  # the first command that failed in it, if one did
    output: str

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.failed


class ShellSession:
    """One bash for a document's steps: variables, background jobs and the working directory
    carry over from block to block. Each block's output goes to a file of its own; the session's
    own output is only the line that reports a block's end."""

    def __init__(self, cwd: Path, env: dict[str, str], work: Path) -> None:
        self.work = work
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its background jobs share its process group: closed together
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # Any failing command (not only a block's last) fails the block: the ERR trap keeps the first.
        self._send("set -o pipefail\ntrap '__failed=${__failed:-\"status $? at line $LINENO: $BASH_COMMAND\"}' ERR\n")
        self.count = 0

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _send(self, text: str) -> None:
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def run(self, step: Step, timeout: float) -> Outcome:
        self.count += 1
        script, output = self.work / f"step-{self.count}.sh", self.work / f"step-{self.count}.out"
        script.write_text(step.code)
        if step.wait_until:
            self._send(
                f"__deadline=$((SECONDS + {WAIT_SECONDS})); "
                f"until {{ {step.wait_until}; }} >/dev/null 2>&1 </dev/null || (( SECONDS >= __deadline )); "
                "do sleep 0.2; done\n"
            )
        self._send(
            f"__failed=; source {script} >{output} 2>&1 </dev/null; __status=$?; "
            f"echo \"__end {self.count} $__status $__failed\"\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return Outcome(None, "", output.read_text())
            if line is None:
                return Outcome(self.process.wait(), "the shell exited", output.read_text())
            if line.startswith(f"__end {self.count} "):
                _, _, status, failed = (line + " ").split(" ", 3)
                return Outcome(int(status), failed.strip(), output.read_text())

    def close(self) -> None:
        """Stop the shell, then whatever it left running in the background (its process group)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def failure(step: Step, outcome: Outcome) -> str:
    """What a failed step says: where, what ran, how it ended, and its output."""
    if outcome.failed:
        ended = f"has a command that failed ({outcome.failed})"
    elif outcome.status is None:
        ended = "did not finish in time"
    else:
        ended = f"ended with status {outcome.status}"
    missing = [text for text in step.expect if text not in outcome.output]
    return (
        f"{step.where()} {ended}"
        + (f"; its output lacks {missing}" if missing else "")
        + f"\n--- the block\n{step.code}--- its output\n{shortened(outcome.output)}"
    )


def shortened(output: str, head: int = 2000, tail: int = 4000) -> str:
    """Its beginning (where a failing command usually answered) and its end."""
    if len(output) <= head + tail:
        return output
    return f"{output[:head]}\n[… {len(output) - head - tail} characters …]\n{output[-tail:]}"
