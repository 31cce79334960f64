"""A whole benchmark run: spec -> cohort -> plan of jobs -> executor -> tables, config and report.

The output folder is checked before training (:func:`metamed.outputs.check_output_place`)
and written all or nothing (:func:`metamed.outputs.staged_output`): a failed run never
leaves half-written results, and a rerun with ``force`` leaves no stale file behind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metamed.data import cohort_from_table, load_dataset
from metamed.data.cohort import Cohort
from metamed.device import device_kind, device_name
from metamed.errors import DataNotFoundError, MetamedValueError
from metamed.evaluation.protocol import (
    FitJob,
    FittedMethod,
    JobCounter,
    Plan,
    Progress,
    ProtocolConfig,
    ProtocolResult,
    ScoreJob,
    ScoreResult,
    code_coverage,
    collect,
    plan,
)
from metamed.evaluation.spec import BenchmarkSpec, DataSpec, MethodSpec
from metamed.learners import BASELINES, default_methods
from metamed.learners.base import MetaLearner
from metamed.outputs import staged_output
from metamed.provenance import provenance_record
from metamed.report import RunStatistics, summary_markdown, write_report
from metamed.runs.executors import Executor, SerialExecutor
from metamed.runs.run_folder import RunFolder
from metamed.tasks import (
    RareRule,
    RareSplit,
    SiteRule,
    SiteSplit,
    TaskSet,
    TaskSplit,
    rare_split,
    site_split,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "BenchmarkOutputs",
    "execute",
    "load_cohort",
    "make_methods",
    "make_splits",
    "read_spec",
    "run_benchmark",
    "run_spec",
]

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
    def decisions_csv(self) -> Path:
        """The guard's decisions per episode; written only when a guard method ran."""
        return self.out_dir / "decisions.csv"

    @property
    def config_json(self) -> Path:
        return self.out_dir / "config.json"

    @property
    def summary_md(self) -> Path:
        return self.out_dir / "summary.md"

    @property
    def report_html(self) -> Path:
        return self.out_dir / "report.html"


def make_splits(
    taskset: TaskSet,
    split: str,
    seed: int,
    rare: RareSplit | None = None,
) -> list[TaskSplit]:
    """``"loso"`` (leave one task out), ``"random"``, ``"auto"`` (loso for few tasks), or
    ``"rare"`` (the split ``rare`` made by :func:`~metamed.tasks.rare_split`)."""
    if split == "rare":
        if rare is None:
            raise MetamedValueError(
                'split "rare" needs the rare-conditions rule (n_common); give it in the spec.'
            )
        return [rare.split]
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
    if split == "sites":
        raise MetamedValueError(
            'split "sites" needs the new-site rule (metamed.tasks.SiteRule); give it in the spec.'
        )
    raise MetamedValueError(
        f"Unknown split '{split}'; use one of auto, loso, random, rare, sites."
    )


def make_methods(
    names: Sequence[str], seed: int, overrides: Mapping[str, Any] | None = None
) -> dict[str, MetaLearner]:
    """Learners by name, seeded; each override applies to every method that accepts it.

    An override that none of ``names`` accepts is an error naming the learners that do.
    """
    spec = BenchmarkSpec(
        DataSpec(), tuple(MethodSpec(n) for n in names), seed=seed, overrides=overrides or {}
    )
    return spec.learners()


def load_cohort(data: DataSpec, data_dir: str | Path | None = None) -> Cohort:
    """The cohort a spec's data names: a registered dataset, or a table."""
    if data.table is None:
        return load_dataset(data.dataset or "synthetic", data_dir=data_dir, **data.options)
    assert data.task_col and data.outcome_col  # DataSpec requires both for a table
    return cohort_from_table(
        data.table,
        task_col=data.task_col,
        outcome_col=data.outcome_col,
        feature_cols=list(data.feature_cols) if data.feature_cols else None,
        categorical_cols=list(data.categorical_cols) if data.categorical_cols else None,
        drop_cols=list(data.drop_cols) if data.drop_cols else None,
        positive_label=data.positive_label,
        outcome_type=data.outcome_type,
    )


def read_spec(path: str | Path) -> BenchmarkSpec:
    """A :class:`BenchmarkSpec` from a TOML file; a relative table path is read from the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise DataNotFoundError(f"--config {path}: cannot read it ({error.strerror}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MetamedValueError(f"--config {path} is not valid TOML: {error}.") from None
    table = data.get("data", {}).get("table") if isinstance(data.get("data"), dict) else None
    if isinstance(table, str) and not Path(table).is_absolute():
        data["data"]["table"] = str(path.parent / table)
    return BenchmarkSpec.from_dict(data)


def run_spec(
    spec: BenchmarkSpec,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    cohort: Cohort | None = None,
    executor: Executor | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
) -> BenchmarkOutputs:
    """Run the benchmark ``spec`` describes (``cohort``, if given, is its data already loaded)."""
    out = RunFolder.check(out, resume=resume, force=force)
    if cohort is None:
        cohort = load_cohort(spec.data, data_dir)
    return run_benchmark(
        cohort,
        spec.learners(),
        out,
        spec.protocol(),
        task_col=spec.data.task_col,
        split=spec.split,
        progress=progress,
        force=force,
        executor=executor,
        resume=resume,
        baselines=spec.baselines,
        spec=spec,
        rare=spec.rare,
        sites=spec.sites,
    )


def run_benchmark(
    cohort: Cohort,
    methods: Sequence[str] | Mapping[str, MetaLearner] | None,
    out: str | Path,
    config: ProtocolConfig,
    task_col: str | None = None,
    split: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    force: bool = False,
    *,
    executor: Executor | None = None,
    resume: bool = False,
    baselines: Sequence[str] | None = None,
    spec: BenchmarkSpec | None = None,
    rare: RareRule | None = None,
    sites: SiteRule | None = None,
) -> BenchmarkOutputs:
    """Run the protocol on ``cohort`` and write results, predictions, config and report.

    ``methods`` are learner names (seeded from ``config.seed``, with ``overrides``) or
    unfitted learners by method id; None runs :func:`~metamed.learners.default_methods`
    for the cohort's outcome, and a named method that cannot model the outcome is an error
    before any training.  ``out`` is checked before anything starts; if it
    already holds a previous run's files, ``force=True`` replaces them all (otherwise
    :class:`~metamed.errors.OutputPlaceError`), and ``resume=True`` continues the run
    recorded there.  Finished jobs are recorded in ``out/jobs`` as they complete.
    """
    out = RunFolder.check(out, resume=resume, force=force)
    if methods is None:
        methods = default_methods(cohort.schema.outcome_type)
    learners = (
        dict(methods)
        if isinstance(methods, Mapping)
        else make_methods(methods, config.seed, overrides)
    )
    if baselines is None:
        baselines = [m for m, learner in learners.items() if learner.name in BASELINES]
    taskset = TaskSet(cohort, task_col)
    # the rare-conditions or the new-site split, skipped tasks logged and counted in the config
    rule_info: RareSplit | SiteSplit | None = None
    if rare is not None:
        rare_info = rare_split(taskset, rare, config.shots, config.seed)
        rule_info = rare_info
        splits = make_splits(taskset, split, config.seed, rare_info)
    elif sites is not None:
        rule_info = site_split(taskset, sites, config.shots, config.seed)
        taskset = rule_info.taskset  # cut into parts where the rule says
        splits = list(rule_info.splits)
    else:
        splits = make_splits(taskset, split, config.seed)
    the_plan = plan(taskset, learners, splits, config, cohort.name)  # checks every K first
    method_params = {m: _jsonable(learner.get_params()) for m, learner in learners.items()}
    identity = {
        "dataset": cohort.name,
        "data": cohort.provenance,
        "task_col": taskset.task_col,
        "splits": [{"train": s.train, "val": s.val, "test": s.test} for s in splits],
        "protocol": asdict(config),
        "methods": method_params,
    }
    replace = force and out.is_dir() and any(out.iterdir())
    device = device_kind()  # --device: not part of the jobs' keys, one device a folder
    if resume:
        RunFolder.check_device(out, device)
    with RunFolder.open(out, identity, resume=resume, replace=replace, device=device) as folder:
        result = execute(the_plan, taskset, executor or SerialExecutor(), folder, progress)
        run_config = {
            "dataset": cohort.name,
            "device": device_name(),
            "task_col": taskset.task_col,
            "schema": cohort.schema.to_dict(),
            "tasks": taskset.summary().to_dict(orient="records"),
            "splits": identity["splits"],
            "protocol": result.config,
            "methods": method_params,
            "fit_seconds": result.fit_seconds,
        }
        if rule_info is not None:
            run_config["split_rule"] = rule_info.to_dict()
        if spec is not None:
            run_config["spec"] = spec.to_dict()
        provenance = provenance_record(data=cohort.provenance, config=run_config)
        # merge: the job records stay beside the tables (a later --resume re-collects them);
        # replacing an older run, everything goes in one all-or-nothing commit instead.
        with staged_output(out, merge=not folder.deferred) as staging:
            folder.write_into(staging)
            result.results.to_csv(staging / "results.csv", index=False)
            result.results.to_parquet(staging / "results.parquet", index=False)
            result.predictions.to_parquet(staging / "predictions.parquet", index=False)
            if len(result.decisions):  # a guard method ran: its decision per episode
                result.decisions.to_csv(staging / "decisions.csv", index=False)
            (staging / "config.json").write_text(json.dumps(provenance, indent=2, default=str))
            # summary.md and report.html show the same summary and verdicts: computed once
            statistics = RunStatistics(result.results, list(baselines))
            (staging / "summary.md").write_text(
                summary_markdown(result.results, list(baselines), statistics=statistics)
            )
            write_report(
                result.results,
                result.predictions,
                provenance,
                staging / "report.html",
                title=f"metamed benchmark: {cohort.name}",
                baselines=list(baselines),
                statistics=statistics,
            )
    return BenchmarkOutputs(out, result)


def execute(
    the_plan: Plan,
    taskset: TaskSet,
    executor: Executor,
    folder: RunFolder | None = None,
    progress: Progress | None = None,
) -> ProtocolResult:
    """Run the plan's jobs that ``folder`` has not recorded, record each, collect the tables.

    With a folder the tables are always rebuilt from its records, so a resumed run and an
    uninterrupted one give the same bytes.
    """
    done = folder.done(the_plan) if folder is not None else set()
    counter = JobCounter(the_plan, progress, done)
    scores: dict[str, ScoreResult] = {}
    fit_seconds: dict[str, float] = {}
    for job, result in executor.run(the_plan, taskset, done, counter.iteration):
        if isinstance(job, FitJob) and isinstance(result, FittedMethod):
            fit_seconds[job.key] = result.seconds
            if folder is not None:
                folder.record_fit(job, result.seconds)
        elif isinstance(job, ScoreJob) and isinstance(result, ScoreResult):
            # With a folder the tables are read back from it below: holding every job's
            # predictions here as well would keep two copies of them (2.5 million rows
            # for a 1-million-row table) in memory at once.
            if folder is not None:
                folder.record_score(job, result)
            else:
                scores[job.key] = result
        counter.finished(job)
    if folder is not None:
        scores, fit_seconds = folder.scores(the_plan), folder.fit_seconds(the_plan)
    return collect(the_plan, scores, fit_seconds, code_coverage(taskset, the_plan.splits))


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v))
        for k, v in params.items()
    }
