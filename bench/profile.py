"""Where a process's CPU goes: py-spy samples, a flame graph, and the cost per workflow by part.

``record(pid, path)`` samples a running process (py-spy, attached by pid: root or ptrace rights)
into collapsed stacks, one ``frame;frame;… count`` line each. ``Profile.load`` reads them back;
``costs`` splits the samples into the parts a reader asks about (Kafka client, Resonate SDK,
tracing, models, logging, metrics, asyncio, this project's code) by the innermost frame that
belongs to one of them; ``flame_graph`` draws them, one bar per frame, callers below callees.

py-spy sees Python threads only: librdkafka's own threads (C) spend CPU it cannot sample, so the
part it cannot see is reported as the process's measured CPU less what it sampled.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATE = 200  # samples per second

#: (part, what a frame's file path holds), first match wins. py-spy names a frame
#: ``function (/full/path/module.py:line)``; the innermost frame that matches names its sample's part.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Kafka client", ("/confluent_kafka/",)),
    ("tracing", ("/opentelemetry/", "/tombstone_processor/tracing.py", "/tombstone_common/telemetry.py")),
    ("models", ("/pydantic/", "/pydantic_core/", "/tombstone_common/messages.py")),
    ("logging", ("/structlog/", "/logging/", "/tombstone_common/logs.py")),
    ("metrics", ("/prometheus_client/", "/tombstone_processor/state.py")),
    ("Resonate SDK", ("/resonate/",)),
    ("HTTP client", ("/aiohttp/", "/yarl/", "/multidict/", "/aiohappyeyeballs/")),
    ("this project", ("/tombstone_", "/bench/")),
    ("asyncio", ("/asyncio/", "/selectors.py")),
)
OTHER = "other (stdlib, interpreter)"
UNSEEN = "not sampled (librdkafka's C threads, code without the GIL)"
COLOURS = {
    "Kafka client": "tab:green", "tracing": "tab:purple", "models": "tab:pink", "logging": "tab:brown",
    "metrics": "tab:olive", "Resonate SDK": "tab:orange", "HTTP client": "tab:red", "this project": "tab:blue",
    "asyncio": "tab:cyan", OTHER: "tab:gray",
}


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (it is in the dev dependencies: make setup)")
    return found


@contextmanager
def record(pid: int, path: Path, rate: int = RATE) -> Iterator[None]:
    """Sample ``pid`` into ``path`` (collapsed stacks) for as long as the block runs."""
    sampler = subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking", "--gil", "--full-filenames",
         "--output", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = sampler.communicate(timeout=60)
        if not path.exists():
            raise RuntimeError(f"py-spy wrote no profile for pid {pid}: {err.decode(errors='replace')[-500:]}")


def part_of(frame: str) -> str | None:
    path = frame.rpartition(" (")[2]
    for part, holds in PARTS:
        if any(piece in path for piece in holds):
            return part
    return None


def short(frame: str) -> str:
    """``function (module.py:line)``: a frame as a reader of the flame graph wants it."""
    function, _, place = frame.rpartition(" (")
    return f"{function} ({place.rsplit('/', 1)[-1]}" if function else frame


@dataclass
class Profile:
    stacks: Counter[tuple[str, ...]]  # outermost frame first
    rate: int = RATE

    @classmethod
    def load(cls, path: Path, rate: int = RATE) -> Profile:
        stacks: Counter[tuple[str, ...]] = Counter()
        for line in path.read_text(errors="replace").splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                # the first frame is py-spy's thread or process name: not code
                stacks[tuple(f for f in frames.split(";") if not f.startswith(("process ", "thread ")))] += int(count)
        return cls(stacks, rate)

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    def part(self, stack: tuple[str, ...]) -> str:
        for frame in reversed(stack):
            found = part_of(frame)
            if found is not None:
                return found
        return OTHER

    def costs(self, workflows: int, cpu_seconds: float | None = None) -> dict[str, float]:
        """CPU ms per workflow of each part, largest first; with the process's measured CPU, the
        part py-spy could not see is a row of its own."""
        by_part: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            by_part[self.part(stack)] += count
        costs = {part: 1000 * count / self.rate / workflows for part, count in by_part.most_common()}
        if cpu_seconds is not None:
            costs[UNSEEN] = max(0.0, 1000 * (cpu_seconds - self.seconds) / workflows)
        return costs

    def top_frames(self, count: int = 12) -> list[tuple[str, float]]:
        """The innermost frames that took the most samples (self time), as shares of all."""
        leaves: Counter[str] = Counter()
        for stack, n in self.stacks.items():
            if stack:
                leaves[stack[-1]] += n
        return [(short(frame), n / self.samples) for frame, n in leaves.most_common(count)]


def flame_graph(profile: Profile, path: Path, title: str, min_share: float = 0.003) -> None:
    """A flame graph as a PNG: the whole width is every sample; each bar a frame, as wide as the
    samples it was on the stack for, its callees stacked above it; coloured by part."""
    tree: dict = {}
    for stack, count in profile.stacks.items():
        node = tree
        for frame in stack:
            child = node.setdefault(frame, {"n": 0, "kids": {}})
            child["n"] += count
            node = child["kids"]
    total = profile.samples or 1
    fig, ax = plt.subplots(figsize=(16, 9))
    depth_seen = [0]

    def draw(node: dict, x: float, depth: int, caller_part: str) -> None:
        for frame, child in sorted(node.items(), key=lambda item: -item[1]["n"]):
            width = child["n"] / total
            if width < min_share:
                x += width
                continue
            part = part_of(frame) or caller_part  # stdlib code takes the colour of its caller
            colour = COLOURS.get(part, "tab:gray")
            ax.barh(depth, width, left=x, height=0.95, color=colour, edgecolor="white", linewidth=0.3, alpha=0.85)
            if width > 0.04:
                name = short(frame)
                ax.text(x + 0.002, depth, name[: int(width * 160)], va="center", fontsize=6, clip_on=True)
            depth_seen[0] = max(depth_seen[0], depth)
            draw(child["kids"], x, depth + 1, part)
            x += width

    draw(tree, 0.0, 0, OTHER)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, depth_seen[0] + 0.5)
    ax.set_xlabel(f"share of {profile.samples} samples ({profile.seconds:.1f} s of CPU at {profile.rate} Hz)")
    ax.set_ylabel("stack depth")
    ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), loc="upper right", fontsize=7, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
