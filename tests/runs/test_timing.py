"""A suite dataset's cost (wall, CPU, load) is summed over its resumed invocations,
so a page never quotes only the seconds of the last ``--resume``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from metamed.runs.suite import read_suite, run_suite
from metamed.runs.timing import LEDGER, RunCost, Stopwatch, record_cost

TINY = """
title = "Tiny timed suite"
shots = [5]
draws = 1
seed = 0
split = "sites"

[[methods]]
name = "pooled-logreg"

[[datasets]]
title = "Indomethacin RCT"
dataset = "indo-rct"
"""


def test_the_stopwatch_counts_cpu_separately_from_waiting() -> None:
    watch = Stopwatch()
    # burn 0.2 s of this thread's own CPU: process time also counts the process's other
    # threads, so 0.2 s of it could pass in less than 0.2 s of wall time (a CI failure)
    end = time.thread_time() + 0.2
    while time.thread_time() < end:
        pass
    time.sleep(0.2)  # and wait 0.2 s without it
    cost = watch.stop()
    assert 0.15 <= cost.cpu_s < cost.wall_s
    assert cost.wall_s >= 0.4 and cost.cores >= 1 and cost.max_load >= 0


def test_the_ledger_restarts_on_a_fresh_run_and_adds_up_resumed_ones(tmp_path: Path) -> None:
    first = RunCost(wall_s=100.0, cpu_s=60.0, max_load=3.0, cores=2)
    again = RunCost(wall_s=5.0, cpu_s=4.0, max_load=1.0, cores=2)
    record_cost(tmp_path, "a", first, resumed=False)
    record_cost(tmp_path, "b", again, resumed=False)
    total = record_cost(tmp_path, "a", again, resumed=True)
    assert (total.wall_s, total.cpu_s, total.max_load, total.invocations) == (105, 64, 3, 2)
    assert "105 s wall, 64 s of CPU over 2 invocations (resumed)" in total.describe()
    ledger = json.loads((tmp_path / LEDGER).read_text())
    assert ledger["b"]["invocations"] == 1  # another dataset's entry is its own
    assert record_cost(tmp_path, "a", again, resumed=False).invocations == 1
    # a resumed folder whose earlier invocations were never timed says so
    assert "earlier invocations were not timed" in record_cost(
        tmp_path, "c", again, resumed=True
    ).describe()


@pytest.mark.slow
def test_a_resumed_suite_page_quotes_every_invocation(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    out = tmp_path / "out"
    suite = read_suite(path)
    run_suite(suite, out, data_dir=data_dir)
    first = json.loads((out / LEDGER).read_text())["indo-rct"]
    run_suite(suite, out, data_dir=data_dir, resume=True)
    both = json.loads((out / LEDGER).read_text())["indo-rct"]
    assert both["invocations"] == 2 and both["wall_s"] > first["wall_s"]
    (page,) = out.glob("*.md")
    (line,) = [ln for ln in page.read_text().splitlines() if ln.startswith("- Time:")]
    assert "s of CPU over 2 invocations (resumed) (load average up to" in line
