"""The results file: machine facts, one table per scenario, and one PNG with a panel each."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from devstack.resonate import server_binary  # noqa: E402


@dataclass
class Section:
    title: str
    settings: str
    header: list[str]
    rows: list[list[str]]
    verdict: str = ""
    plot: Callable[[Axes], None] | None = field(default=None, repr=False)
    failed: bool = False
    # pictures of their own beside the results (name → draw it into a PNG path), e.g. flame graphs
    pictures: dict[str, Callable[[Path], None]] = field(default_factory=dict, repr=False)


    def problem(self) -> str | None:
        """Why this section holds no usable result: it failed, was skipped, has no rows, or a
        row with an empty cell (a measurement that produced nothing)."""
        if self.failed or not self.rows:
            return self.settings if (self.failed or self.settings.startswith("skipped")) else "no rows"
        for row in self.rows:
            if len(row) != len(self.header) or any(not cell.strip() for cell in row):
                return f"a row with an empty or missing cell: {row}"
        return None


def fmt(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 1 else f"{seconds:.2f}"


def plot_cdf(ax: Axes, values: list[float], label: str) -> None:
    """The share of ``values`` at or below each value (an empirical CDF)."""
    ordered = sorted(values)
    ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)


def failed(title: str, error: BaseException) -> Section:
    return Section(title, f"**failed**: {type(error).__name__}: {str(error)[:600]}", [], [], failed=True)


def _first(path: str, prefix: str) -> str:
    for line in Path(path).read_text().splitlines():
        if line.startswith(prefix):
            return line.split(":", 1)[1].strip()
    return "?"


def _kafka_version(cache: Path) -> str:
    jars = sorted((cache / "kafka-libs").glob("kafka_2.13-*.jar"))
    return jars[0].stem.removeprefix("kafka_2.13-") if jars else "?"


def _server_version() -> str:
    binary = server_binary()
    if binary is None:
        return "none (local mode)"
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return result.stdout.strip() or "?"


def machine_facts(cache: Path, mode: str) -> list[tuple[str, str]]:
    import confluent_kafka

    memory_kib = int(_first("/proc/meminfo", "MemTotal").split()[0])
    return [
        ("CPU", f"{os.cpu_count()} cores, {_first('/proc/cpuinfo', 'model name')}"),
        ("memory", f"{memory_kib / 2**20:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("Kafka broker", f"Apache Kafka {_kafka_version(cache)} (KRaft, single node, loopback)"),
        ("Kafka client", f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}"),
        ("Resonate server", _server_version()),
        ("Resonate SDK", f"resonate-sdk {importlib.metadata.version('resonate-sdk')}"),
        ("mode", mode),
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def picture_file(prefix: str, name: str) -> str:
    return f"{prefix}-{name}.png"


def markdown(
    title: str, facts: list[tuple[str, str]], sections: list[Section], footer: list[str], plot: str, prefix: str
) -> str:
    lines = [f"# {title}", "", "| machine | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts]
    for section in sections:
        lines += ["", f"## {section.title}", "", section.settings, ""]
        if section.header:
            lines += ["| " + " | ".join(section.header) + " |", "|" + "---|" * len(section.header)]
            lines += ["| " + " | ".join(row) + " |" for row in section.rows]
        if section.verdict:
            lines += ["", section.verdict]
        lines += [f"\n![{name}]({picture_file(prefix, name)})" for name in section.pictures]
    lines += ["", *footer, "", f"![plots]({plot})", ""]
    return "\n".join(lines)


def plots(sections: list[Section], path: Path) -> None:
    drawable = [s for s in sections if s.plot is not None]
    if not drawable:
        return
    columns = 2 if len(drawable) > 1 else 1
    rows = (len(drawable) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.5 * rows), squeeze=False)
    for section, ax in zip(drawable, axes.flat):
        section.plot(ax)  # type: ignore[misc]
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(drawable):]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
