"""``python -m bench`` (``make bench``): every scenario in one run against one broker and server.

Prints the results table and writes ``bench/results/<date>.md`` with ``<date>.png`` beside it,
and copies the markdown to ``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench import floor, hol, latency, memory, recovery, throughput
from bench.report import Section, failed, machine_facts, markdown, plots
from bench.stack import CACHE, REPO, Stack, running_stack

SCENARIOS: dict[str, tuple[str, Callable[[Stack], Section]]] = {
    module.__name__.removeprefix("bench."): (module.TITLE, module.run)
    for module in (floor, latency, throughput, hol, recovery, memory)
}
BUDGET_SECONDS = 22 * 60  # a scenario is not started after this; the whole run stays under 30 min


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, ledgers)")
    parser.add_argument(
        "--profile", action="store_true",
        help="run the processors under pyinstrument: a session per processor in the (kept) run folder, "
        "to read with `pyinstrument --load <file>`",
    )
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)

    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    sections: list[Section] = []
    with running_stack(run_dir, args.profile) as stack:
        facts = machine_facts(CACHE, stack.mode)
        print(f"bench: broker {stack.bootstrap}, {stack.mode}; run folder {run_dir}", flush=True)
        for key in chosen:
            title, scenario = SCENARIOS[key]
            elapsed = time.monotonic() - started
            if elapsed > BUDGET_SECONDS:
                sections.append(Section(title, f"skipped: the run's {BUDGET_SECONDS // 60}-minute budget was spent", [], []))
                continue
            print(f"bench: [{elapsed:5.0f}s] {title} …", flush=True)
            try:
                sections.append(scenario(stack))
            except Exception as error:  # one broken scenario must not hide the others' numbers
                traceback.print_exc()
                sections.append(failed(title, error))
    seconds = time.monotonic() - started

    args.out.mkdir(parents=True, exist_ok=True)
    complete = chosen == list(SCENARIOS)
    day = date.today().isoformat() + ("" if complete else "-" + "-".join(chosen))
    png = args.out / f"{day}.png"
    footer = [
        f"Run time: {seconds / 60:.1f} min (`make bench`). Load average at the end: "
        + " / ".join(f"{x:.2f}" for x in os.getloadavg())
        + ". Every process (broker, server, processors, this script) shares the machine above.",
    ]
    text = markdown(f"Benchmarks {day}", facts, sections, footer, png.name)
    plots(sections, png)
    (args.out / f"{day}.md").write_text(text)
    if complete:  # latest.md always holds a whole run
        shutil.copyfile(args.out / f"{day}.md", args.out / "latest.md")
    print("\n" + text)
    print(f"bench: wrote {args.out / f'{day}.md'} and {png} in {seconds:.0f}s", flush=True)

    broken = any(s.failed for s in sections)
    if broken or args.keep or args.profile:
        print(f"bench: run folder kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
