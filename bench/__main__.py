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
from datetime import date
from pathlib import Path

from bench import SCENARIOS
from bench.report import Section, failed, machine_facts, markdown, picture_file, plots
from bench.stack import CACHE, REPO, running_stack

BUDGET_SECONDS = 22 * 60  # a scenario is not started after this; the whole run stays under 30 min


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument(
        "--smoke", action="store_true",
        help="every scenario at tiny sizes, to check that each still runs (numbers meaningless); "
        "results go to the run folder, not bench/results",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, ledgers)")
    parser.add_argument(
        "--profile", action="store_true",
        help="the floor scenario samples the processor and the floor client with py-spy: flame graphs "
        "and a table of CPU per workflow by part beside the results (its CPU figures carry py-spy's cost)",
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
            module = SCENARIOS[key]
            title = module.TITLE
            elapsed = time.monotonic() - started
            if elapsed > BUDGET_SECONDS:
                sections.append(Section(title, f"skipped: the run's {BUDGET_SECONDS // 60}-minute budget was spent", [], []))
                continue
            print(f"bench: [{elapsed:5.0f}s] {title} …", flush=True)
            try:
                sections.append(module.run(stack, module.SMOKE if args.smoke else module.FULL))
            except Exception as error:  # one broken scenario must not hide the others' numbers
                traceback.print_exc()
                sections.append(failed(title, error))
    seconds = time.monotonic() - started

    out = run_dir / "results" if args.smoke else args.out
    out.mkdir(parents=True, exist_ok=True)
    complete = chosen == list(SCENARIOS) and not args.smoke
    day = date.today().isoformat() + ("" if complete else "-" + "-".join(chosen if not args.smoke else ["smoke"]))
    png = out / f"{day}.png"
    footer = [
        f"Run time: {seconds / 60:.1f} min (`make bench`). Load average at the end: "
        + " / ".join(f"{x:.2f}" for x in os.getloadavg())
        + ". Every process (broker, server, processors, this script) shares the machine above.",
    ]
    text = markdown(f"Benchmarks {day}", facts, sections, footer, png.name, day)
    plots(sections, png)
    for section in sections:
        for name, draw in section.pictures.items():
            draw(out / picture_file(day, name))
    (out / f"{day}.md").write_text(text)
    if complete:  # latest.md always holds a whole run
        shutil.copyfile(out / f"{day}.md", out / "latest.md")
    print("\n" + text)
    print(f"bench: wrote {out / f'{day}.md'} and {png} in {seconds:.0f}s", flush=True)

    # A skipped scenario (no server binary) is not broken; anything else without a full table is.
    broken = any(s.problem() and not s.settings.startswith("skipped") for s in sections)
    if broken or args.keep or args.profile:
        print(f"bench: run folder kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
