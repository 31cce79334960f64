"""End to end: the README's UCI Heart benchmark command, in this process, timed by stage.

The command is run through the CLI itself (``metamed.cli.app``), so what is timed is what a
user waits for; the stages are timed by wrapping the functions the command calls, which
changes nothing they compute:

``import``
    ``import metamed.cli`` and ``metamed.runs`` (what the command imports before work).
``data``
    loading and cleaning the cohort (``metamed.runs.load_cohort``).
``meta-fit``
    per method, preprocessing plus meta-training on every split
    (``metamed.evaluation.protocol.run_fit``).
``adapt + score``
    per method, sampling each support set, adapting and scoring the rest of the task
    (``metamed.evaluation.protocol.run_score``).
``report``
    ``summary.md`` and ``report.html`` (``summary_markdown`` and ``write_report``).
``other``
    the rest of the wall time: planning, collecting the tables, writing them.

Peak RSS is the process's maximum resident set (``getrusage``), imports included.  With
``--reference`` the run's ``results.parquet`` is compared with a stored one value by value,
and its ``predictions.parquet`` with the one beside it (the README's benchmark must give
the same numbers after a speed-up).

Run::

    python benchmarks/end_to_end.py --data-dir /work/shared/data \\
        --reference /work/ref/heart/results.parquet
    # writes benchmarks/results/end_to_end.{json,md}; --profile FILE also writes a cProfile dump
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METHODS = "maml,fomaml,anil,metasgd,reptile,protonet,pooled,pooled-finetune,local-logreg,local-gbm"
#: issue 14's goals: the whole command, the report, ``import metamed.learners`` (seconds)
GOAL_COMMAND_SECONDS, GOAL_REPORT_SECONDS, GOAL_IMPORT_SECONDS = 30.0, 1.0, 1.0
#: the README's UCI Heart command, less --data-dir and --out (given by this script)
COMMAND = [
    "benchmark", "--dataset", "uci-heart", "--methods", METHODS,
    "--shots", "5,10,20,40", "--draws", "20",
]  # fmt: skip


class Stages:
    """Seconds per stage (and per method within a stage), filled by wrapped functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.by_method: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def wrap(self, owner: Any, name: str, stage: str, method_of: Callable | None = None) -> None:
        """Replace ``owner.name`` by a timed call of the same function."""
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[stage] += elapsed
                self.cpu[stage] += time.process_time() - cpu
                if method_of is not None:
                    self.by_method[stage][method_of(*args)] += elapsed

        setattr(owner, name, timed)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _git_commit() -> str:
    """The commit of the metamed source this run imported (``+changes`` when edited)."""
    import metamed

    where = Path(metamed.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=where, capture_output=True, text=True,
        )  # fmt: skip
    except OSError:
        return "unknown"
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _import_learners_seconds() -> float:
    """``import metamed.learners`` in a fresh interpreter (what any learner user pays)."""
    code = "import time; t = time.perf_counter(); import metamed.learners; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    return float(out.stdout.strip())


def _compare_table(now_path: Path, ref_path: Path, keys: list[str], values: list[str]) -> dict:
    """Value-by-value comparison of one table with its reference, rows in the same order:
    the key columns as text, the value columns as floats (NaN equal to NaN)."""
    import numpy as np
    import pandas as pd

    now, ref = pd.read_parquet(now_path), pd.read_parquet(ref_path)
    record: dict[str, Any] = {"reference": str(ref_path)}
    same_rows = len(now) == len(ref) and all(
        (now[c].astype(str).to_numpy() == ref[c].astype(str).to_numpy()).all() for c in keys
    )
    if not same_rows:
        return {**record, "same_rows": False, "identical": False}
    a = now[values].to_numpy(dtype=float).ravel()
    b = ref[values].to_numpy(dtype=float).ravel()
    equal = (a == b) | (np.isnan(a) & np.isnan(b))
    return {
        **record,
        "same_rows": True,
        "values": int(len(a)),
        "equal_values": int(equal.sum()),
        "max_abs_difference": float(np.nanmax(np.abs(a - b))) if len(a) else 0.0,
        "identical": bool(equal.all()),
    }


def compare(run_dir: Path, reference: Path) -> dict[str, Any]:
    """The run's ``results.parquet`` against ``reference``, and its ``predictions.parquet``
    against the one beside ``reference`` when there is one."""
    keys = ["method", "dataset", "task", "k", "draw"]
    record = {
        "results": _compare_table(
            run_dir / "results.parquet", reference, [*keys, "metric"], ["value"]
        )
    }
    ref_predictions = reference.parent / "predictions.parquet"
    if ref_predictions.exists():
        record["predictions"] = _compare_table(
            run_dir / "predictions.parquet", ref_predictions, [*keys, "row"], ["y_true", "y_pred"]
        )
    return record


def reference_commit(reference: Path) -> str | None:
    """The commit that made the reference run, from its ``config.json`` provenance."""
    config = reference.parent / "config.json"
    commit = json.loads(config.read_text()).get("git_commit") if config.exists() else None
    return commit[:7] if commit else None


def run(data_dir: Path, out: Path, profile: Path | None, threads: int | None) -> dict[str, Any]:
    """Run the command once in this process; the stage times, peak RSS and wall time."""
    load_before = os.getloadavg()
    start, cpu = time.perf_counter(), time.process_time()
    import metamed.cli as cli
    import metamed.evaluation.protocol as protocol
    import metamed.runs as runs
    import metamed.runs.benchmark as benchmark

    stages = Stages()
    stages.seconds["import"] = time.perf_counter() - start
    stages.cpu["import"] = time.process_time() - cpu
    stages.wrap(runs, "load_cohort", "data")
    stages.wrap(protocol, "run_fit", "meta-fit", lambda job, *_: job.method)
    stages.wrap(protocol, "run_score", "adapt + score", lambda job, *_: job.method)
    stages.wrap(benchmark, "summary_markdown", "report")
    stages.wrap(benchmark, "write_report", "report")
    args = [*COMMAND, "--data-dir", str(data_dir), "--out", str(out), "--force"]
    if threads is not None:
        args += ["--threads", str(threads)]
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    try:
        cli.app(args, standalone_mode=False)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
    wall, cpu_total = time.perf_counter() - start, time.process_time() - cpu
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu_total,
        "stages": {**dict(stages.seconds), "other": wall - sum(stages.seconds.values())},
        "stages_cpu": {**dict(stages.cpu), "other": cpu_total - sum(stages.cpu.values())},
        "by_method": {stage: dict(m) for stage, m in stages.by_method.items()},
        "peak_rss_mib": _rss_mib(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def _goal(what: str, seconds: float, limit: float) -> str:
    """One goal's line: met, or missed by how much."""
    if seconds < limit:
        return f"- {what} under {limit:g} s: **met** ({seconds:.2f} s)."
    return (
        f"- {what} under {limit:g} s: **not met** ({seconds:.2f} s, "
        f"{seconds - limit:.2f} s over, {seconds / limit:.1f}x the goal)."
    )


def markdown(record: dict[str, Any]) -> str:
    """The results page of one run."""
    s = record["stages"]
    lines = [
        "# End to end: the README's UCI Heart benchmark",
        "",
        f"Command: `{record['command']}` (results: `end_to_end.json`). It runs "
        f"`metamed {' '.join(COMMAND)}` in one process through the CLI and times each stage "
        "by wrapping the functions the command calls.",
        "",
        f"Machine: {record['machine']}, {record['torch_threads']} torch threads, serial executor. "
        f"Code: `{record['commit']}`. Load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.1f}' for x in record['load_average_before'])}, after "
        f"{'/'.join(f'{x:.1f}' for x in record['load_average_after'])}: this is a shared "
        "2-core machine, other jobs ran beside this one, so the times are as measured under "
        "that load, not on a quiet machine.",
        "",
        f"**Wall time {record['wall_seconds']:.1f} s (CPU {record['cpu_seconds']:.1f} s); peak RSS {record['peak_rss_mib']:.0f} MiB; "
        f"`import metamed.learners` {record['import_learners_seconds']:.2f} s (fresh "
        "interpreter).**",
        "",
        "CPU time (user + system, all threads of the process) moves less with the load "
        "of other processes than the wall clock does; both are given.",
        "",
        "| stage | wall (s) | CPU (s) |",
        "|---|---:|---:|",
    ]
    order = ["import", "data", "meta-fit", "adapt + score", "report", "other"]
    c = record["stages_cpu"]
    lines += [f"| {st} | {s.get(st, 0.0):.2f} | {c.get(st, 0.0):.2f} |" for st in order]
    lines.append(f"| **total** | {record['wall_seconds']:.2f} | {record['cpu_seconds']:.2f} |")
    lines += ["", "| method | meta-fit, wall (s) | adapt + score, wall (s) |", "|---|---:|---:|"]
    fits = record["by_method"].get("meta-fit", {})
    scores = record["by_method"].get("adapt + score", {})
    for method in list(dict.fromkeys([*fits, *scores])):
        lines.append(f"| {method} | {fits.get(method, 0.0):.2f} | {scores.get(method, 0.0):.2f} |")
    lines += ["", "## Goals (issue 14)", ""]
    lines += [
        _goal(what, value, limit)
        for what, value, limit in (
            ("the whole command, wall", record["wall_seconds"], GOAL_COMMAND_SECONDS),
            ("report rendering, wall", s.get("report", 0.0), GOAL_REPORT_SECONDS),
            ("`import metamed.learners`", record["import_learners_seconds"], GOAL_IMPORT_SECONDS),
        )
    ]
    comparison = record.get("comparison")
    if comparison is not None:
        lines += ["", "## Same numbers?", ""]
        if record.get("reference_commit"):
            lines += [f"The reference run was made by commit `{record['reference_commit']}`.", ""]
        for table, cmp in comparison.items():
            if not cmp["same_rows"]:
                lines.append(f"- `{table}.parquet`: the rows differ from `{cmp['reference']}`.")
                continue
            verdict = "identical" if cmp["identical"] else "NOT identical"
            lines.append(
                f"- `{table}.parquet` against `{cmp['reference']}`: {cmp['equal_values']} of "
                f"{cmp['values']} values equal, max abs difference "
                f"{cmp['max_abs_difference']:.3g}: {verdict}."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("METAMED_DATA_DIR", "data"))
    )
    parser.add_argument("--out", type=Path, default=None, help="Run folder (default: a temp dir).")
    parser.add_argument("--reference", type=Path, default=None, help="results.parquet to match.")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="Page folder.")
    parser.add_argument("--profile", type=Path, default=None, help="Write a cProfile dump here.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Pass --threads to the command (default: the CLI's own choice, the physical cores).",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/end_to_end.py" + "".join(
        f" {flag} {value}"
        for flag, value in (
            ("--data-dir", args.data_dir),
            ("--reference", args.reference),
            ("--threads", args.threads),
        )
        if value is not None
    )
    import_learners = _import_learners_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "heart"
        record = run(args.data_dir, out, args.profile, args.threads)
        comparison = compare(out, args.reference) if args.reference else None
    record = {
        "command": command,
        "commit": _git_commit(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical "
        f"CPUs, Python {platform.python_version()}, torch {_torch_version()}",
        "import_learners_seconds": import_learners,
        "torch_threads": _torch_threads(),
        **record,
        "comparison": comparison,
        "reference_commit": reference_commit(args.reference) if args.reference else None,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "end_to_end.json").write_text(json.dumps(record, indent=2) + "\n")
    page = markdown(record)
    (args.results / "end_to_end.md").write_text(page)
    print(page)
    return 0 if comparison is None or all(c["identical"] for c in comparison.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
