"""A whole benchmark run: cohort -> splits -> protocol -> tables, config and report on disk.

The output folder is checked before training (:func:`metamed.outputs.check_output_place`)
and written all or nothing (:func:`metamed.outputs.staged_output`): a failed run never
leaves half-written results, and a rerun with ``force`` leaves no stale file behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metamed.data.cohort import Cohort
from metamed.errors import MetamedValueError
from metamed.evaluation.protocol import Progress, ProtocolConfig, ProtocolResult, run_protocol
from metamed.learners import BASELINES, default_methods, make_learner
from metamed.learners.base import MetaLearner
from metamed.outputs import check_output_place, staged_output
from metamed.provenance import provenance_record
from metamed.report import summary_markdown, write_report
from metamed.tasks import TaskSet, TaskSplit

__all__ = ["BenchmarkOutputs", "make_splits", "make_methods", "run_benchmark"]

#: With at most this many tasks every task is held out in turn (leave-one-group-out);
#: with more, one seeded random split keeps the run affordable.
LOSO_MAX_TASKS = 6


@dataclass(frozen=True)
class BenchmarkOutputs:
    """Where a run's files are (``dataclasses.replace(o, out_dir=...)`` after moving them)."""

    out_dir: Path
    protocol: ProtocolResult

    @property
    def results_csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def results_parquet(self) -> Path:
        return self.out_dir / "results.parquet"

    @property
    def predictions_parquet(self) -> Path:
        return self.out_dir / "predictions.parquet"

    @property
    def config_json(self) -> Path:
        return self.out_dir / "config.json"

    @property
    def summary_md(self) -> Path:
        return self.out_dir / "summary.md"

    @property
    def report_html(self) -> Path:
        return self.out_dir / "report.html"


def make_splits(taskset: TaskSet, split: str, seed: int) -> list[TaskSplit]:
    """``"loso"`` (leave one task out), ``"random"``, or ``"auto"`` (loso for few tasks)."""
    if split == "auto":
        split = "loso" if len(taskset) <= LOSO_MAX_TASKS else "random"
    if split == "loso":
        return list(taskset.leave_one_out())
    if split == "random":
        if len(taskset) < 3:
            raise MetamedValueError(
                f"A random task split needs at least 3 tasks, the cohort has {len(taskset)}; use --split loso."
            )
        return [taskset.random_split(test_fraction=0.25, val_fraction=0.15, seed=seed)]
    raise MetamedValueError(f"Unknown split '{split}'; use one of auto, loso, random.")


def make_methods(
    names: Sequence[str], seed: int, overrides: dict[str, Any] | None = None
) -> dict[str, MetaLearner]:
    """Instantiate learners by name; ``overrides`` apply where a learner has that parameter."""
    methods: dict[str, MetaLearner] = {}
    for name in names:
        learner = make_learner(name, random_state=seed)
        extra = {k: v for k, v in (overrides or {}).items() if k in learner.get_params()}
        methods[name] = make_learner(name, **{**learner.get_params(), **extra})
    return methods


def run_benchmark(
    cohort: Cohort,
    methods: Sequence[str] | None,
    out: Path,
    config: ProtocolConfig,
    task_col: str | None = None,
    split: str = "auto",
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> BenchmarkOutputs:
    """Run the protocol on ``cohort`` and write results, predictions, config and report.

    ``out`` is checked before anything starts; if it already holds a previous run's files,
    ``force=True`` replaces them all (otherwise :class:`~metamed.errors.OutputPlaceError`).
    ``methods`` None runs :func:`~metamed.learners.default_methods` for the cohort's
    outcome; a named method that cannot model the outcome is an error before any training.
    """
    out = check_output_place(out, force=force)
    if methods is None:
        methods = default_methods(cohort.schema.outcome_type)
    taskset = TaskSet(cohort, task_col)
    splits = make_splits(taskset, split, config.seed)
    learners = make_methods(methods, config.seed, overrides)
    result = run_protocol(taskset, learners, splits, config, dataset=cohort.name, progress=progress)

    run_config = {
        "dataset": cohort.name,
        "task_col": taskset.task_col,
        "schema": cohort.schema.to_dict(),
        "tasks": taskset.summary().to_dict(orient="records"),
        "splits": [{"train": s.train, "val": s.val, "test": s.test} for s in splits],
        "protocol": result.config,
        "methods": {name: _jsonable(learner.get_params()) for name, learner in learners.items()},
        "fit_seconds": result.fit_seconds,
    }
    provenance = provenance_record(data=cohort.provenance, config=run_config)
    with staged_output(out) as staging:
        result.results.to_csv(staging / "results.csv", index=False)
        result.results.to_parquet(staging / "results.parquet", index=False)
        result.predictions.to_parquet(staging / "predictions.parquet", index=False)
        (staging / "config.json").write_text(json.dumps(provenance, indent=2, default=str))
        baselines = [m for m in methods if m in BASELINES]
        (staging / "summary.md").write_text(summary_markdown(result.results, baselines))
        write_report(
            result.results,
            result.predictions,
            provenance,
            staging / "report.html",
            title=f"metamed benchmark: {cohort.name}",
            baselines=baselines,
        )
    return BenchmarkOutputs(out, result)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v))
        for k, v in params.items()
    }
