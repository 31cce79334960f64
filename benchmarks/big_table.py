"""A bring-your-own table of 1,000,000 rows through ``metamed benchmark --table``.

A benchmark, not a test (issue 14's goal: under 60 s and 0.5 GB on 2 cores).  It writes a
seeded synthetic multi-site table (40 hospitals, 12 numeric and 3 categorical features,
a binary outcome) as CSV in a temporary folder, then runs the command in a child process
and records its wall time, CPU time and peak resident memory (``getrusage`` of the
child).  The same measurement of a child that only imports what the command imports
(torch, scikit-learn, LightGBM, pandas and every learner) gives the floor that the data
and the models add to.

Run::

    python benchmarks/big_table.py                  # writes benchmarks/results/big_table.{json,md}
    python benchmarks/big_table.py --rows 200000 --methods local-logreg
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
IMPORTS = "import metamed.cli, metamed.runs, metamed.learners as L; L.learner_names()"


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """The synthetic table: site effects on the features and on the outcome's log-odds."""
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 40, rows)
    X = rng.normal(size=(rows, 12)) + (site[:, None] % 5) * 0.1
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(12)])
    for j in range(3):
        frame[f"cat{j}"] = rng.choice(list("abcde"), rows)
    logit = X[:, 0] - 0.5 * X[:, 1] + 0.1 * (site % 7 - 3) + 0.5 * (frame["cat0"] == "a")
    frame["hospital"] = [f"site{s:02d}" for s in site]
    frame["died"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.to_csv(path, index=False)


def measured(argv: list[str]) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of one child process running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        argv, check=True, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux): measure the
    # small import-only child first, so the command's own peak is what the second reads.
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": after.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--methods", default="pooled,local-logreg")
    parser.add_argument("--shots", default="10")
    parser.add_argument("--draws", default="5")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "big.csv"
        start = time.perf_counter()
        write_table(table, args.rows)
        write_s = time.perf_counter() - start
        imports = measured([sys.executable, "-c", IMPORTS])
        command = [
            "benchmark", "--table", str(table), "--task-col", "hospital", "--outcome-col", "died",
            "--methods", args.methods, "--shots", args.shots, "--draws", args.draws,
            "--threads", str(args.threads), "--out", str(Path(tmp) / "run"),
        ]  # fmt: skip
        run = measured([sys.executable, "-c", "from metamed.cli import main; main()", *command])
        size_mib = table.stat().st_size / 2**20
    record = {
        "command": "python benchmarks/big_table.py " + " ".join(argv or sys.argv[1:]),
        "metamed_command": "metamed "
        + " ".join(command).replace(str(table), "big.csv").replace(str(Path(tmp) / "run"), "run"),
        "rows": args.rows,
        "csv_mib": size_mib,
        "write_table_s": write_s,
        "imports_only": imports,
        "benchmark": run,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}",
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "big_table.json").write_text(json.dumps(record, indent=2) + "\n")
    page = markdown(record)
    (args.results / "big_table.md").write_text(page)
    print(page)
    return 0


def markdown(record: dict) -> str:
    run, imports = record["benchmark"], record["imports_only"]
    load = record["load_average_before_after"]
    wall_met = run["wall_s"] < 60
    rss_met = run["peak_rss_mib"] < 512
    return (
        f"# A {record['rows']:,}-row table through `metamed benchmark --table`\n\n"
        f"Command: `{record['command'].strip()}` (results: `big_table.json`). It runs\n"
        f"`{record['metamed_command']}` in a child process on a seeded synthetic table "
        f"({record['csv_mib']:.0f} MiB of CSV: 40 hospitals, 12 numeric and 3 categorical "
        "features, a binary outcome).\n\n"
        f"Machine: {record['machine']}; load average {load[0]:.1f} before, {load[1]:.1f} after"
        " (other jobs share this machine when it is above about 1).\n\n"
        "| | wall (s) | CPU (s) | peak RSS (MiB) |\n|---|---:|---:|---:|\n"
        f"| the command | {run['wall_s']:.1f} | {run['cpu_s']:.1f} | {run['peak_rss_mib']:.0f} |\n"
        f"| its imports alone | {imports['wall_s']:.1f} | {imports['cpu_s']:.1f} | "
        f"{imports['peak_rss_mib']:.0f} |\n\n"
        f"Goals (issue 14): under 60 s: **{'met' if wall_met else 'not met'}**; under 0.5 GB: "
        f"**{'met' if rss_met else 'not met'}**. The imports alone hold "
        f"{imports['peak_rss_mib']:.0f} MiB, so the data and models add "
        f"{run['peak_rss_mib'] - imports['peak_rss_mib']:.0f} MiB. Under 0.5 GB the imports "
        f"would leave {512 - imports['peak_rss_mib']:.0f} MiB for the data, less than the "
        f"table's 12 numeric columns alone take in float64 ({record['rows'] * 12 * 8 / 2**20:.0f}"
        " MiB): the goal cannot be met while the command loads torch, scikit-learn and "
        "LightGBM, so what is measured here is how much the data and models add.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
