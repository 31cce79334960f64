"""``metamed train``: meta-train one method on every task of a cohort and save it for sites.

The config is a small TOML file, in the sections the benchmark spec uses (``[data]``
with the same keys; one ``[method]`` instead of a list of methods)::

    seed = 0

    [data]
    dataset = "uci-heart"       # or: table = "patients.csv", task_col = "site",
                                #     outcome_col = "died", and optionally feature_cols,
                                #     categorical_cols, drop_cols, positive_label,
                                #     outcome_type; options = {...} for a dataset

    [method]
    name = "maml"
    params = { meta_iterations = 300 }

    [evaluation]                # optional: an estimate of how well it adapts, in the manifest
    shots = [10]
    draws = 5
    split = "auto"              # auto | loso | random

The artifact is a :class:`~metamed.learners.Pipeline` (preprocessing fitted on every
row, the meta-learner trained on every task for its fixed budget) with the data's
provenance, the config and, when ``[evaluation]`` is given, the summary of the episodic
protocol on held-out tasks run with the same settings (``provenance.evaluation``): each
held-out task is adapted from ``shots`` patients ``draws`` times and scored on its other
patients.  That costs one more meta-training per split.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metamed.data.cohort import Cohort
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.evaluation.protocol import Progress, ProtocolConfig, run_protocol
from metamed.evaluation.spec import DataSpec, MethodSpec
from metamed.evaluation.statistics import summarise
from metamed.learners import Pipeline
from metamed.learners.base import MetaLearner
from metamed.runs.benchmark import load_cohort, make_splits
from metamed.tasks import TaskSet, make_tasks
from metamed.threads import thread_record

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["EvaluationSpec", "TrainSpec", "load_train_cohort", "read_train_spec", "train_model"]

@dataclass(frozen=True)
class EvaluationSpec:
    """Support sizes, draws and split rule of the held-out estimate."""

    shots: tuple[int, ...] = (10,)
    draws: int = 5
    split: str = "auto"

    def protocol(self, seed: int) -> ProtocolConfig:
        # No early stopping: the evaluated procedure is the deployed one (fixed budget).
        return ProtocolConfig(self.shots, self.draws, seed, val_rows_fraction=0.0)


@dataclass(frozen=True)
class TrainSpec:
    """What ``metamed train`` builds (see the module docstring for the file format).

    ``data`` and ``method`` are the benchmark spec's own :class:`DataSpec` and
    :class:`MethodSpec`, so a key means the same in both files and is checked the same way.
    """

    data: DataSpec
    method: MethodSpec
    seed: int = 0
    evaluation: EvaluationSpec | None = None

    def __post_init__(self) -> None:
        if (self.data.table is None) == (self.data.dataset is None):
            raise MetamedValueError(
                '[data] needs exactly one of dataset = "NAME" (see `metamed datasets`) or '
                'table = "FILE.csv".'
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MetamedValueError(f"seed must be a whole number >= 0, got {self.seed!r}.")

    def learner(self) -> MetaLearner:
        return self.method.learner(self.seed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seed": self.seed,
            "data": self.data.to_dict(),
            "method": self.method.to_dict(),
        }
        if self.evaluation is not None:
            out["evaluation"] = {
                "shots": list(self.evaluation.shots),
                "draws": self.evaluation.draws,
                "split": self.evaluation.split,
            }
        return out


def _table(section: Any, where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise MetamedTypeError(f"{where} must be a table of keys, got {section!r}.")
    return section


def _check_keys(given: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in given:
        if key not in allowed:
            raise MetamedValueError(
                f"{where}: unknown key '{key}'.{did_you_mean(key, allowed)} "
                f"Known keys: {', '.join(allowed)}."
            )


def _evaluation(section: dict[str, Any]) -> EvaluationSpec:
    _check_keys(section, ("shots", "draws", "split"), "[evaluation]")
    shots = section.get("shots", [10])
    if not isinstance(shots, list) or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in shots
    ):
        raise MetamedValueError(
            f"[evaluation] shots must be a list of whole numbers >= 2, got {shots!r}."
        )
    draws = section.get("draws", 5)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise MetamedValueError(f"[evaluation] draws must be a whole number >= 1, got {draws!r}.")
    split = section.get("split", "auto")
    if split not in ("auto", "loso", "random"):
        raise MetamedValueError(f"[evaluation] split must be auto, loso or random, got {split!r}.")
    return EvaluationSpec(tuple(sorted(set(shots))), draws, split)


def read_train_spec(path: str | Path) -> TrainSpec:
    """Read and check a train config (TOML); a relative table path is read from its folder."""
    path = Path(path).expanduser()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetamedValueError(f"--config {path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MetamedValueError(f"--config {path}: cannot read it ({error}).") from None
    except tomllib.TOMLDecodeError as error:
        raise MetamedValueError(f"--config {path} is not valid TOML: {error}.") from None
    _check_keys(raw, ("seed", "data", "method", "evaluation"), "train config")
    for required in ("data", "method"):
        if required not in raw:
            raise MetamedValueError(f"The train config {path} has no [{required}] section.")
    data = dict(_table(raw["data"], "[data]"))
    table = data.get("table")
    if isinstance(table, str) and not Path(table).expanduser().is_absolute():
        data["table"] = str(path.parent / Path(table).expanduser())
    method = _table(raw["method"], "[method]")
    if "name" not in method:
        raise MetamedValueError('[method] needs name = "LEARNER" (e.g. "maml").')
    evaluation = raw.get("evaluation")
    return TrainSpec(
        data=DataSpec.from_dict(data),
        method=MethodSpec.from_dict(method),
        seed=raw.get("seed", 0),
        evaluation=None if evaluation is None else _evaluation(_table(evaluation, "[evaluation]")),
    )


def load_train_cohort(spec: TrainSpec, data_dir: str | Path | None = None) -> Cohort:
    """The cohort the spec's ``[data]`` names (as the benchmark loads it)."""
    return load_cohort(spec.data, data_dir)


def _evaluate(
    spec: TrainSpec, taskset: TaskSet, dataset: str, progress: Progress | None
) -> dict[str, Any]:
    assert spec.evaluation is not None
    config = spec.evaluation.protocol(spec.seed)
    splits = make_splits(taskset, spec.evaluation.split, spec.seed)
    result = run_protocol(
        taskset,
        {spec.method.id: spec.learner()},
        splits,
        config,
        dataset=dataset,
        progress=progress,
    )
    summary = summarise(result.results)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for row in summary.to_dict(orient="records"):
        metrics.setdefault(str(row["metric"]), {})[str(row["k"])] = {
            "mean": float(row["mean"]),
            "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]),
            "n_tasks": int(row["n_tasks"]),
        }
    return {
        "protocol": "episodic: adapt from K patients of a held-out task, score its others",
        "split": spec.evaluation.split,
        "held_out_tasks": sorted({t for s in splits for t in s.test}),
        "shots": list(spec.evaluation.shots),
        "draws": spec.evaluation.draws,
        "early_stopping": "none (the deployed model's fixed budget)",
        "metrics": metrics,
    }


def train_model(
    spec: TrainSpec,
    out: str | Path,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Meta-train ``spec``'s method on every task and save the pipeline at ``out``."""
    cohort = load_train_cohort(spec, data_dir)
    taskset = TaskSet(cohort, spec.data.task_col)
    evaluation = _evaluate(spec, taskset, cohort.name, progress) if spec.evaluation else None
    prep = Preprocessor(cohort.schema).fit(cohort.frame)
    tasks = make_tasks(taskset, taskset.names, prep)
    learner = spec.learner()
    start = time.perf_counter()
    learner.meta_fit(tasks)
    seconds = time.perf_counter() - start
    provenance = {k: v for k, v in cohort.provenance.items() if k != "truth"}
    provenance["training"] = {
        "config": spec.to_dict(),
        "tasks": taskset.summary().to_dict(orient="records"),
        "patients": len(cohort.frame),
        "fit_seconds": round(seconds, 3),
        "machine": thread_record(),  # threads used (--threads), physical cores
    }
    if evaluation is not None:
        provenance["evaluation"] = evaluation
    return Pipeline(prep, learner, provenance).save(out)
