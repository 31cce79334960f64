"""The episodic evaluation protocol, as a plan of jobs.

For every split (e.g. leave-one-site-out), preprocessing is fitted on the split's
meta-train tasks only, every method is meta-trained once, and then for each held-out
task, each support size K and each of R draws: a random support set is sampled (holding
both classes, or K random patients: ``ProtocolConfig.sampler``), the method adapts to it, and the *rest of the task* is scored.  Episodes are
drawn from a generator seeded by (seed, task, K, draw), so every method sees exactly the
same support and query rows; this is what makes paired comparisons valid.

The work is cut into jobs, so that it can run in parallel, on other machines, or resume::

    the_plan = plan(taskset, methods, splits, config, dataset)   # checks K first; no work
    fitted = run_fit(fit_job, taskset, config)                    # split x method
    result = run_score(score_job, fitted, config, dataset)        # fit x task x K (R draws)
    tables = collect(the_plan, results_by_key, fit_seconds)       # same tables, any order

Each job is a pure function of itself and its data: the learner's ``random_state``, the
validation-row seed and the episode seeds fix every draw, so a job gives the same rows in
any process and in any order.  :func:`run_protocol` is the serial composition of the three.
Executors and run folders live in :mod:`metamed.runs`; nothing here writes a file.

Outputs are two tidy tables: ``results`` (method, dataset, task, k, draw, metric, value)
and ``predictions`` (method, dataset, task, k, draw, row, y_true, y_pred) for calibration
plots; ``method`` is the method id (see :mod:`metamed.evaluation.spec`) and ``row`` the
scored patient's position in the cohort table, so every prediction can be traced back to
its patient (and the leakage tests can tell query rows from support rows without
re-deriving the episodes).  ``y_pred`` is what the outcome predicts: P(y = 1) for a
binary outcome, the value for a numeric one.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.evaluation.metrics import score
from metamed.learners.base import AdaptedModel, BinaryModel, MetaLearner, check_outcome_supported
from metamed.learners.clinical import (
    ScoreBaseline,
    check_score_applies,
    clinical_score,
    score_tasks,
)
from metamed.learners.guard import GuardedModel
from metamed.learners.recalibration import RECALIBRATED, recalibrate
from metamed.outcomes import Outcome
from metamed.tasks import (
    Task,
    TaskSet,
    TaskSplit,
    check_sampler,
    hold_out_rows,
    make_tasks,
    max_support_size,
    min_support_size,
    sample_support_query,
)

__all__ = [
    "DECISION_COLUMNS",
    "FitJob",
    "FittedMethod",
    "JobCounter",
    "Plan",
    "ProtocolConfig",
    "ProtocolResult",
    "ScoreJob",
    "ScoreResult",
    "check_shots",
    "code_coverage",
    "collect",
    "empty_decisions",
    "episode_rng",
    "iter_serial",
    "plan",
    "run_fit",
    "run_job",
    "run_protocol",
    "run_score",
]

#: Fewest held-out rows of a training task worth validating on: a validation episode
#: needs a support set (10 rows by default) plus a query set.
MIN_VAL_ROWS = 30

#: progress callback: (description, completed jobs, total jobs); during meta-training the
#: completed count moves by the fraction of the fit's iterations done (a float)
Progress = Callable[[str, float, int], None]

#: The result tables' columns and types, the same however the jobs ran (in this process,
#: in another, or read back from a run folder).
RESULT_COLUMNS = ["method", "dataset", "task", "k", "draw", "metric", "value"]
RESULT_DTYPES = {"k": "int64", "draw": "int64", "value": "float64"}
#: The guard's decisions (:mod:`metamed.learners.guard`): per episode of a guard method,
#: what it served (``choice``, the adapted model's ``weight``, ``reason``) and, per metric,
#: the query's value of the served model and of its two candidates, always adapting
#: (``adapted``) and never adapting (``pooled``).  Empty for runs without a guard.
DECISION_COLUMNS = [
    "method", "dataset", "task", "k", "draw", "choice", "weight", "reason",
    "metric", "served", "adapted", "pooled",
]  # fmt: skip
DECISION_DTYPES = {
    "k": "int64", "draw": "int64", "weight": "float64",
    "served": "float64", "adapted": "float64", "pooled": "float64",
}  # fmt: skip


def empty_decisions() -> pd.DataFrame:
    """A decisions table without rows (runs without a guard)."""
    return pd.DataFrame(columns=DECISION_COLUMNS).astype(DECISION_DTYPES)


PREDICTION_DTYPES = {
    "k": "int64",
    "draw": "int64",
    "row": "int64",
    "y_true": "float32",
    "y_pred": "float64",
}


@dataclass(frozen=True)
class ProtocolConfig:
    """Support sizes, number of random draws per (task, K), and the master seed."""

    shots: tuple[int, ...] = (5, 10, 20, 40)
    draws: int = 20
    seed: int = 0
    #: When a split has no meta-val tasks (four hospitals: none can be spared), this
    #: share of each training task's rows is held out for early stopping instead; 0 turns
    #: it off and learners run their fixed budget.  Checked on UCI Heart before adopting
    #: it (leave-one-site-out, K=10, 10 draws; pooled, pooled + fine-tune, FOMAML): Brier
    #: improved in 11 and AUROC in 9 of the 12 (site, method) pairs.
    val_rows_fraction: float = 0.2
    #: How support sets are drawn (:data:`metamed.tasks.SUPPORT_SAMPLERS`): holding both
    #: classes ("conditioned"), or K random patients of the site ("unconditioned").
    #: Recorded in the run's configuration with the other fields.
    sampler: str = "conditioned"
    #: Also score every binary method recalibrated on its support set, cross-validated
    #: within it (method id ``<method>+recal``; :mod:`metamed.learners.recalibration`).
    recalibrate: bool = False

    def __post_init__(self) -> None:
        check_sampler(self.sampler)
        if not self.shots or any(int(k) < 1 for k in self.shots):
            raise MetamedValueError(f"shots must be positive integers, got {self.shots}.")
        if not 0.0 <= self.val_rows_fraction < 1.0:
            raise MetamedValueError(
                f"val_rows_fraction must be in [0, 1), got {self.val_rows_fraction}."
            )
        if self.seed < 0:
            raise MetamedValueError(f"seed must be a non-negative integer, got {self.seed}.")
        if self.draws < 1:
            raise MetamedValueError(f"draws must be >= 1, got {self.draws}.")


@dataclass
class ProtocolResult:
    results: pd.DataFrame
    predictions: pd.DataFrame
    fit_seconds: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    #: the guard's decisions (:data:`DECISION_COLUMNS`); empty without a guard method
    decisions: pd.DataFrame = field(default_factory=empty_decisions)


def episode_rng(seed: int, task: str, k: int, draw: int) -> np.random.Generator:
    """The generator that draws one episode: identical for every method."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), k, draw])


def check_shots(tasks: Iterable[Task], shots: Sequence[int], sampler: str = "conditioned") -> None:
    """Fail early, before any work, if some K does not fit some held-out task."""
    for task in tasks:
        limit = max_support_size(task)
        if limit == 0:
            raise MetamedValueError(
                f"Held-out task '{task.name}' has a single outcome class in all {len(task)} rows; "
                "a support set needs both classes. Drop this task."
            )
        too_big = [k for k in shots if k > limit]
        if too_big:
            raise MetamedValueError(
                f"K={max(too_big)} is larger than held-out task '{task.name}' allows ({len(task)} "
                f"patients, at least one must be left to score). Use --shots with values <= {limit}."
            )
        outcome = task.outcome_type
        least = min_support_size(task, sampler)
        if min(shots) < least:
            raise MetamedValueError(
                f"K={min(shots)} is too small for a {outcome} outcome: a support set needs "
                f"{outcome.support_needs}; use K >= {least}."
            )


def _score(outcome: Outcome, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The registry's metrics of this outcome kind (its ``default_metrics``) on one query set."""
    return score(outcome.name, y, p)


@dataclass(frozen=True)
class FitJob:
    """Meta-train one method on one split: fit preprocessing on its training tasks, meta-fit."""

    split_index: int
    split: TaskSplit
    method: str
    #: the unfitted learner (hyperparameters only); each job fits a fresh clone
    learner: MetaLearner

    @property
    def key(self) -> str:
        return f"fit|{self.split_index}|{self.method}"


@dataclass(frozen=True)
class ScoreJob:
    """Adapt a fitted method to support sets of one held-out task and score the rest.

    One score job holds the draws of one (fit, task, K): the episodes are independent,
    and grouping them keeps the cost of a job (shipping the fitted model) small.
    """

    fit_key: str
    split_index: int
    method: str
    task: str
    k: int
    draws: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"score|{self.split_index}|{self.method}|{self.task}|{self.k}|{self.draws[0]}-{self.draws[-1]}"


@dataclass(frozen=True)
class FittedMethod:
    """What a fit job hands its score jobs: the meta-trained learner and the held-out tasks."""

    learner: MetaLearner
    test_tasks: dict[str, Task]
    seconds: float
    #: each held-out task's rows' positions in the cohort table (the predictions' ``row``)
    test_rows: dict[str, np.ndarray]


@dataclass(frozen=True)
class ScoreResult:
    """The tidy rows of one score job."""

    results: pd.DataFrame
    predictions: pd.DataFrame
    decisions: pd.DataFrame = field(default_factory=empty_decisions)


@dataclass(frozen=True)
class Plan:
    """Every job of a protocol run, in the order their rows appear in the result tables."""

    fits: tuple[FitJob, ...]
    scores: tuple[ScoreJob, ...]
    config: ProtocolConfig
    dataset: str

    @property
    def splits(self) -> list[TaskSplit]:
        """The splits, in order (each fit job holds its own)."""
        return list({f.split_index: f.split for f in self.fits}.values())

    def scores_of(self, fit: FitJob) -> list[ScoreJob]:
        return [s for s in self.scores if s.fit_key == fit.key]

    def fit_of(self, score: ScoreJob) -> FitJob:
        return next(f for f in self.fits if f.key == score.fit_key)

    def __len__(self) -> int:
        return len(self.fits) + len(self.scores)


def plan(
    taskset: TaskSet,
    methods: Mapping[str, MetaLearner],
    splits: Sequence[TaskSplit],
    config: ProtocolConfig,
    dataset: str,
) -> Plan:
    """All fit jobs (split x method) and score jobs (fit x held-out task x K, all draws).

    Checks that every K fits every held-out task before any job runs; only labels and row
    counts are read for that.  ``methods`` maps a method id to an *unfitted* learner.
    """
    if not methods:
        raise MetamedValueError("No methods to evaluate; pass at least one method name.")
    outcome = taskset.cohort.schema.outcome
    outcome_type = taskset.cohort.schema.outcome_type
    for method, learner in methods.items():  # every method must model this outcome
        check_outcome_supported(method, type(learner), outcome_type)
        if isinstance(learner, ScoreBaseline):
            check_score_applies(clinical_score(learner.score), taskset.cohort)
    for name in sorted({name for split in splits for name in split.test}):
        y = taskset.frame(name)[outcome].to_numpy(dtype=np.float32)
        check_shots(
            [Task(name, np.zeros((len(y), 0), np.float32), y, outcome_type)],
            config.shots,
            config.sampler,
        )
    fits: list[FitJob] = []
    scores: list[ScoreJob] = []
    draws = tuple(range(config.draws))
    for index, split in enumerate(splits):
        for method, learner in methods.items():
            fit = FitJob(index, split, method, learner)
            fits.append(fit)
            scores += [
                ScoreJob(fit.key, index, method, task, k, draws)
                for task in split.test
                for k in config.shots
            ]
    return Plan(tuple(fits), tuple(scores), config, dataset)


def run_fit(
    job: FitJob,
    taskset: TaskSet,
    config: ProtocolConfig,
    progress: Callable[[int, int, float], None] | None = None,
) -> FittedMethod:
    """Fit preprocessing on the split's training tasks only, then meta-train a fresh clone.

    A pure function of the job and the data: the same job gives the same fitted method in
    any process (the learner's ``random_state`` and the validation-row seed fix every draw).
    """
    split = job.split
    if isinstance(job.learner, ScoreBaseline):
        # a clinical score reads the raw rows (its reference column or formula inputs),
        # never the preprocessed features; it has nothing to validate
        score = clinical_score(job.learner.score)
        train = score_tasks(score, taskset, split.train, split.train)
        return _fitted(
            job, taskset, train, None, score_tasks(score, taskset, split.train, split.test)
        )
    train, val, test = _split_tasks(taskset, split, config.val_rows_fraction, config.seed)
    return _fitted(job, taskset, train, val, test, progress)


#: The last split's model-ready tasks, for the next fit job of the same split (see
#: :func:`_split_tasks`): (task set, split, validation fraction, seed) and the tasks.  The
#: task set is matched by identity (held here, so its id cannot be reused meanwhile).
_LAST_SPLIT: list[tuple[tuple[TaskSet, TaskSplit, float, int], tuple]] = []


def _split_tasks(
    taskset: TaskSet, split: TaskSplit, val_rows_fraction: float, seed: int
) -> tuple[list[Task], list[Task] | None, list[Task]]:
    """The split's training, validation and held-out tasks, preprocessed on its training rows.

    Every method of a split gets the same tasks (the preprocessor and the validation rows
    depend on the split and the seed only), and a plan runs a split's fit jobs one after
    another, so the last split's tasks are kept and handed to the next fit of the same
    split: on OPT (73 numeric columns, 12 methods) fitting and applying the preprocessing
    again for every method took a fifth of the fit jobs' time.  Tasks are frozen and no
    learner writes into their arrays, so sharing them changes no number.
    """
    key = (taskset, split, float(val_rows_fraction), int(seed))
    if _LAST_SPLIT and _LAST_SPLIT[0][0][0] is taskset and _LAST_SPLIT[0][0][1:] == key[1:]:
        return _LAST_SPLIT[0][1]
    prep = Preprocessor(taskset.cohort.schema).fit(taskset.frames(split.train))
    train = make_tasks(taskset, split.train, prep)
    val = make_tasks(taskset, split.val, prep) if split.val else None
    if val is None and val_rows_fraction > 0:
        fit_part, val_part = hold_out_rows(
            train, val_rows_fraction, np.random.default_rng([seed, 1])
        )
        if any(len(t) >= MIN_VAL_ROWS for t in val_part):
            # a task too small to give validation rows keeps all its rows for training
            train = [
                fit if len(v) >= MIN_VAL_ROWS else whole
                for fit, v, whole in zip(fit_part, val_part, train, strict=True)
            ]
            val = [v for v in val_part if len(v) >= MIN_VAL_ROWS]
    tasks = (train, val, make_tasks(taskset, split.test, prep))
    _LAST_SPLIT[:] = [(key, tasks)]
    return tasks


def _fitted(
    job: FitJob,
    taskset: TaskSet,
    train: list[Task],
    val: list[Task] | None,
    test: list[Task],
    progress: Callable[[int, int, float], None] | None = None,
) -> FittedMethod:
    """Meta-train a fresh clone of the job's learner on ``train`` (``val``), keep ``test``."""
    learner = job.learner.clone()
    if progress is not None and hasattr(learner, "progress"):
        learner.progress = progress
    start = time.perf_counter()
    learner.meta_fit(train, val_tasks=val)
    seconds = time.perf_counter() - start
    if hasattr(learner, "progress"):
        learner.progress = None  # a run-time hook, not model state (and not picklable)
    rows = {t.name: taskset.rows(t.name) for t in test}
    return FittedMethod(learner, {t.name: t for t in test}, seconds, rows)


def run_score(
    job: ScoreJob, fitted: FittedMethod, config: ProtocolConfig, dataset: str
) -> ScoreResult:
    """Sample each draw's support set, adapt, and score the rest of the task."""
    task = fitted.test_tasks[job.task]
    rows: list[dict] = []
    # the predictions' columns, one piece per scored model, made one frame at the end
    # (a frame per episode cost more than scoring it)
    scored_as: list[tuple[str, int]] = []
    pred_rows: list[np.ndarray] = []
    pred_y: list[np.ndarray] = []
    pred_p: list[np.ndarray] = []
    decisions: list[dict] = []
    for draw in job.draws:
        support_idx, query_idx = sample_support_query(
            task, job.k, episode_rng(config.seed, task.name, job.k, draw), sampler=config.sampler
        )
        support = task.subset(support_idx)
        model = fitted.learner.adapt(support)
        query = task.subset(query_idx)
        models: list[tuple[str, AdaptedModel]] = [(job.method, model)]
        # a guard is not recalibrated: it already cross-validates inside the support, and
        # recalibrating it would nest a cross-validation in each fold (25 adaptations more)
        if (
            config.recalibrate
            and isinstance(model, BinaryModel)
            and not isinstance(model, GuardedModel)
        ):
            # folds drawn apart from the episode, so the episode is the same with or without
            folds = np.random.default_rng(
                [config.seed, zlib.crc32(task.name.encode()), job.k, draw, 1]
            )
            models.append(
                (job.method + RECALIBRATED, recalibrate(fitted.learner, support, model, folds))
            )
        row = fitted.test_rows[job.task][query_idx]
        for method, scored in models:
            # what the outcome scores: P(y=1) (binary), the value (numeric)
            p = task.outcome_type.predict(scored, query.X)
            cell = {
                "method": method,
                "dataset": dataset,
                "task": task.name,
                "k": job.k,
                "draw": draw,
            }
            for metric, value in _score(task.outcome_type, query.y, p).items():
                rows.append({**cell, "metric": metric, "value": float(value)})
            scored_as.append((method, draw))
            pred_rows.append(row)
            pred_y.append(query.y)
            pred_p.append(p)
        if isinstance(model, GuardedModel):
            decisions += _decision_rows(model, query, {**cell, "method": job.method})
    lengths = [len(r) for r in pred_rows]
    preds = pd.DataFrame(
        {
            "method": np.repeat(np.array([m for m, _ in scored_as], dtype=object), lengths),
            "dataset": dataset,
            "task": task.name,
            "k": job.k,
            "draw": np.repeat(np.array([d for _, d in scored_as]), lengths),
            "row": np.concatenate(pred_rows),
            "y_true": np.concatenate(pred_y),
            "y_pred": np.concatenate(pred_p),
        }
    )
    return ScoreResult(
        pd.DataFrame(rows, columns=RESULT_COLUMNS),
        preds,
        pd.DataFrame(decisions, columns=DECISION_COLUMNS).astype(DECISION_DTYPES),
    )


def _decision_rows(model: GuardedModel, query: Task, cell: dict) -> list[dict]:
    """One episode's decision of a guard, with the query's metrics of what it served and
    of its two candidates (scored here, after the guard decided on the support alone)."""
    outcome = query.outcome_type
    values = {
        name: _score(outcome, query.y, outcome.predict(m, query.X))
        for name, m in (("served", model), ("adapted", model.adapted), ("pooled", model.pooled))
    }
    decided = {"choice": model.choice, "weight": model.weight, "reason": model.reason}
    return [
        {**cell, **decided, "metric": metric, **{name: v[metric] for name, v in values.items()}}
        for metric in values["served"]
    ]


def run_job(
    job: FitJob | ScoreJob, data: TaskSet | FittedMethod, config: ProtocolConfig, dataset: str
):
    """Run one job: a fit job needs the task set, a score job its fitted method."""
    if isinstance(job, FitJob) and isinstance(data, TaskSet):
        return run_fit(job, data, config)
    if isinstance(job, ScoreJob) and isinstance(data, FittedMethod):
        return run_score(job, data, config, dataset)
    raise MetamedTypeError(
        f"run_job: a fit job needs a TaskSet and a score job a FittedMethod, got "
        f"{type(job).__name__} with {type(data).__name__}."
    )


def code_coverage(taskset: TaskSet, splits: Sequence[TaskSplit]) -> list[dict]:
    """Per split, how much of the held-out tasks' codes the meta-train vocabulary misses.

    Empty for cohorts without code sets.  Refits each split's preprocessing (data only,
    deterministic), so that the count needs no fitted method and survives a resume.
    """
    if not taskset.cohort.schema.codesets:
        return []
    coverage = []
    for split in splits:
        prep = Preprocessor(taskset.cohort.schema).fit(taskset.frames(split.train))
        coverage.append(
            {
                "test": list(split.test),
                "vocabulary": {col: len(codes) for col, codes in prep.codes_.items()},
                "train": prep.unknown_codes_,
                "held_out": prep.count_unknown_codes(taskset.frames(split.test)),
            }
        )
    return coverage


def collect(
    plan: Plan,
    scores: Mapping[str, ScoreResult],
    fit_seconds: Mapping[str, float],
    unknown_codes: Sequence[dict] = (),
) -> ProtocolResult:
    """The tidy tables from the score jobs' rows, in plan order, whatever order they ran in.

    ``fit_seconds`` maps a fit job's key to its meta-training time; ``unknown_codes`` (from
    :func:`code_coverage`) goes into the run's config when there is any, so the config of
    a cohort without code sets is unchanged.
    """
    missing = [s.key for s in plan.scores if s.key not in scores]
    if missing:
        raise MetamedValueError(f"{len(missing)} score jobs have no result (first: {missing[0]}).")
    parts = [scores[s.key] for s in plan.scores]
    results = pd.concat([p.results for p in parts], ignore_index=True)
    predictions = pd.concat([p.predictions for p in parts], ignore_index=True)
    decided = [p.decisions for p in parts if len(p.decisions)]
    decisions = (
        pd.concat(decided, ignore_index=True).astype(DECISION_DTYPES)
        if decided
        else empty_decisions()
    )
    seconds = {
        f"{fit.method}|{','.join(fit.split.test)}": float(fit_seconds[fit.key])
        for fit in plan.fits
        if fit.key in fit_seconds
    }
    run = asdict(plan.config)
    if unknown_codes:
        run["unknown_codes"] = list(unknown_codes)
    return ProtocolResult(
        results.astype(RESULT_DTYPES),
        predictions.astype(PREDICTION_DTYPES),
        seconds,
        run,
        decisions,
    )


#: meta-training hook of :func:`iter_serial`: (method id, iteration, iterations, loss)
IterationHook = Callable[[str, int, int, float], None]


def iter_serial(
    plan: Plan,
    taskset: TaskSet,
    done: Collection[str] = (),
    on_iteration: IterationHook | None = None,
) -> Iterator[tuple[FitJob | ScoreJob, FittedMethod | ScoreResult]]:
    """Run the jobs of ``plan`` one after another, skipping the keys in ``done``.

    Yields each finished job with its result.  A fit job is run only when one of its score
    jobs is still to do.
    """
    for fit in plan.fits:
        todo = [s for s in plan.scores_of(fit) if s.key not in done]
        if not todo:
            continue
        hook = None
        if on_iteration is not None:

            def hook(it: int, n_it: int, loss: float, method: str = fit.method) -> None:
                on_iteration(method, it, n_it, loss)

        fitted = run_fit(fit, taskset, plan.config, hook)
        yield fit, fitted
        for job in todo:
            yield job, run_score(job, fitted, plan.config, plan.dataset)


class JobCounter:
    """Turns finished jobs into ``progress(what, done, total)`` calls, with an estimate.

    Jobs already done (``done``) count from the start; a fit job counts as done when all
    its score jobs are. While a method meta-trains, ``done`` moves by the fraction of its
    iterations so far, so the bar moves inside a long fit.

    The estimate of the time left ("about 3 min left" in ``what``) adds, over the jobs
    still to run, the mean time of the finished jobs of the same kind and method (a fit of
    MAML and one of local-logreg differ a thousandfold); a method none of whose fits has
    finished is projected from the running fit's iterations, or takes the mean of the other
    fits. No estimate is given until there is one for every kind of job left.
    """

    def __init__(
        self,
        plan: Plan,
        progress: Progress | None,
        done: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress, self.total = progress, len(plan)
        skipped_fits = [f for f in plan.fits if all(s.key in done for s in plan.scores_of(f))]
        self.count = len(skipped_fits) + sum(s.key in done for s in plan.scores)
        self._clock = clock
        self._last = clock()  # when the previous job finished (or the counter started)
        self._left: dict[tuple[str, str], int] = {}
        for job in [f for f in plan.fits if f not in skipped_fits] + [
            s for s in plan.scores if s.key not in done
        ]:
            key = _job_kind(job)
            self._left[key] = self._left.get(key, 0) + 1
        self._seconds: dict[tuple[str, str], list[float]] = {}
        self._running: tuple[str, float] | None = None  # method and projected fit seconds

    def finished(self, job: FitJob | ScoreJob) -> None:
        now = self._clock()
        key = _job_kind(job)
        self._seconds.setdefault(key, []).append(now - self._last)
        self._left[key] = self._left.get(key, 1) - 1
        self._last, self._running = now, None
        self.count += 1
        if self.progress is None:
            return
        if isinstance(job, FitJob):
            what = f"meta-trained {job.method} (held out: {', '.join(job.split.test)})"
        else:
            what = f"{job.method}: {job.task}, K={job.k}"
        self.progress(self._with_estimate(what), self.count, self.total)

    def iteration(self, method: str, it: int, n_it: int, loss: float) -> None:
        """Long meta-training moves the bar by its iterations inside the current step."""
        elapsed = self._clock() - self._last
        self._running = (method, elapsed * n_it / max(it, 1))
        if self.progress is not None:
            self.progress(
                self._with_estimate(
                    f"meta-training {method}: iteration {it}/{n_it}, loss {loss:.3f}"
                ),
                self.count + it / max(n_it, 1),
                self.total,
            )

    def seconds_left(self) -> float | None:
        """Estimated seconds until the last job finishes, or None while unknown."""
        fits = [t for (kind, _), ts in self._seconds.items() if kind == "fit" for t in ts]
        left = 0.0
        for (kind, method), n in self._left.items():
            if n <= 0:
                continue
            times = self._seconds.get((kind, method))
            running = self._running if self._running and self._running[0] == method else None
            if times:
                each = sum(times) / len(times)
            elif kind == "fit" and running is not None:
                each = running[1]
            elif kind == "fit" and fits:
                each = sum(fits) / len(fits)
            else:
                return None
            left += n * each
            if kind == "fit" and running is not None:
                # the running fit is one of these n, and part of it is behind us
                left -= min(each, self._clock() - self._last)
        return max(left, 0.0)

    def _with_estimate(self, what: str) -> str:
        seconds = self.seconds_left()
        return what if seconds is None else f"{what}; about {_duration(seconds)} left"


def _job_kind(job: FitJob | ScoreJob) -> tuple[str, str]:
    return ("fit" if isinstance(job, FitJob) else "score", job.method)


def _duration(seconds: float) -> str:
    """A time to wait, as a person says it: 40 s, 3 min, 1 h 20 min."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


def run_protocol(
    taskset: TaskSet,
    methods: dict[str, MetaLearner],
    splits: Sequence[TaskSplit],
    config: ProtocolConfig,
    dataset: str,
    progress: Progress | None = None,
) -> ProtocolResult:
    """Meta-train each method on each split and score it on the held-out tasks, serially.

    ``methods`` maps a method id to an *unfitted* learner; each split gets a fresh clone.
    The same as :func:`plan`, then every job in turn, then :func:`collect`.
    """
    the_plan = plan(taskset, methods, splits, config, dataset)
    counter = JobCounter(the_plan, progress)
    scores: dict[str, ScoreResult] = {}
    fit_seconds: dict[str, float] = {}
    for job, result in iter_serial(the_plan, taskset, on_iteration=counter.iteration):
        counter.finished(job)
        if isinstance(result, FittedMethod):
            fit_seconds[job.key] = result.seconds
        else:
            scores[job.key] = result
    return collect(the_plan, scores, fit_seconds, code_coverage(taskset, the_plan.splits))
