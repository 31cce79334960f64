"""A run folder survives SIGKILL: finished jobs or nothing, and --resume completes the run
with the same bytes as an uninterrupted run, redoing no finished job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import metamed.evaluation.protocol as protocol
from metamed.cli import app
from metamed.data import make_synthetic_cohort

TABLES = ("results.csv", "results.parquet", "predictions.parquet", "summary.md")


def benchmark_args(table: Path, out: Path) -> list[str]:
    return [
        "benchmark", "--table", str(table), "--task-col", "site", "--outcome-col", "outcome",
        "--methods", "fomaml,local-logreg", "--meta-iterations", "40",
        "--shots", "4,8", "--draws", "3", "--out", str(out),
    ]  # fmt: skip


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "patients.csv"
    make_synthetic_cohort(n_tasks=4, n_per_task=40, n_features=4, seed=5).frame.to_csv(
        path, index=False
    )
    return path


def score_records(out: Path) -> list[Path]:
    jobs = out / "jobs"
    return sorted(jobs.glob("score-*")) if jobs.is_dir() else []


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_tables(tmp_path, table, monkeypatch):
    killed = tmp_path / "killed"
    command = [sys.executable, "-c", "from metamed.cli import main; main()"]
    process = subprocess.Popen(
        [*command, *benchmark_args(table, killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:  # kill it once a few of its 16 score jobs are recorded
        deadline = time.monotonic() + 300
        while len(score_records(killed)) < 3 and process.poll() is None:
            assert time.monotonic() < deadline, "the run recorded no job in 5 minutes"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    finished = score_records(killed)
    assert 3 <= len(finished) < 16
    for record in finished:  # whole records only
        assert sorted(p.name for p in record.iterdir()) == [
            "job.json", "predictions.parquet", "results.parquet"
        ]  # fmt: skip
    assert not any((killed / name).exists() for name in TABLES)  # no table before the end
    first_seen = {r.name: r.stat().st_ino for r in finished}

    runner = CliRunner()
    again = runner.invoke(app, benchmark_args(table, killed))
    assert again.exit_code == 2 and "--resume" in again.output  # a non-empty --out is refused

    scored = []
    real_run_score = protocol.run_score

    def counting_run_score(job, *args, **kwargs):
        scored.append(job.key)
        return real_run_score(job, *args, **kwargs)

    monkeypatch.setattr(protocol, "run_score", counting_run_score)
    resumed = runner.invoke(app, [*benchmark_args(table, killed), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len(scored) == 16 - len(finished)  # no finished job was redone...
    assert {r.name: r.stat().st_ino for r in finished} == first_seen  # ...or rewritten

    monkeypatch.undo()
    whole = tmp_path / "whole"
    assert runner.invoke(app, benchmark_args(table, whole)).exit_code == 0
    for name in TABLES:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_resume_refuses_another_benchmark_and_a_foreign_folder(tmp_path, table):
    runner = CliRunner()
    out = tmp_path / "run"
    args = benchmark_args(table, out)
    fast = [*args[: args.index("--methods")], "--methods", "local-logreg", *args[args.index("--shots"):]]
    assert runner.invoke(app, fast).exit_code == 0
    complete = runner.invoke(app, [*fast, "--resume"])  # nothing left to do: same tables
    assert complete.exit_code == 0, complete.output
    other = runner.invoke(app, [*fast, "--draws", "4", "--resume"])
    assert other.exit_code == 2 and "different benchmark" in other.output, other.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    refused = runner.invoke(app, [*fast[:-1], str(foreign), "--resume"])
    assert refused.exit_code == 2 and "no resumable run" in refused.output, refused.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
