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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamed.data.cohort import Cohort
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.evaluation.protocol import Progress, ProtocolConfig, run_protocol
from metamed.evaluation.statistics import summarise
from metamed.learners import Pipeline, make_learner
from metamed.learners.base import LEARNERS
from metamed.runs.benchmark import make_splits
from metamed.tasks import TaskSet, make_tasks
from metamed.threads import thread_record

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["EvaluationSpec", "TrainSpec", "load_train_cohort", "read_train_spec", "train_model"]

_DATA_KEYS = (
    "dataset",
    "options",
    "table",
    "task_col",
    "outcome_col",
    "feature_cols",
    "categorical_cols",
    "drop_cols",
    "positive_label",
    "outcome_type",
)
_TABLE_KEYS = _DATA_KEYS[4:]


def _check_keys(given: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in given:
        if key not in allowed:
            raise MetamedValueError(
                f"{where}: unknown key '{key}'.{did_you_mean(key, allowed)} "
                f"Known keys: {', '.join(allowed)}."
            )


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
    """What ``metamed train`` builds (see the module docstring for the file format)."""

    data: dict[str, Any]
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    evaluation: EvaluationSpec | None = None
    base_dir: Path = Path(".")

    def __post_init__(self) -> None:
        _check_keys(self.data, _DATA_KEYS, "[data]")
        has_table, has_dataset = "table" in self.data, "dataset" in self.data
        if has_table == has_dataset:
            raise MetamedValueError(
                '[data] needs exactly one of dataset = "NAME" (see `metamed datasets`) or '
                'table = "FILE.csv".'
            )
        if has_table and not {"task_col", "outcome_col"} <= set(self.data):
            raise MetamedValueError(
                "[data] with a table needs task_col (the site column) and outcome_col."
            )
        if has_dataset and any(k in self.data for k in _TABLE_KEYS):
            raise MetamedValueError(
                f"[data]: {', '.join(k for k in _TABLE_KEYS if k in self.data)} apply to a "
                "table only."
            )
        if self.method not in LEARNERS:
            make_learner(self.method)  # the "did you mean" error
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MetamedValueError(f"seed must be a whole number >= 0, got {self.seed!r}.")
        self.learner()  # unknown hyperparameters fail now, not after loading data

    def learner(self):
        accepted = LEARNERS[self.method]._param_names()
        for key in self.params:
            if key not in accepted or key == "progress":
                raise MetamedValueError(
                    f"[method] params: {self.method} has no hyperparameter '{key}'."
                    f"{did_you_mean(key, accepted)} Its hyperparameters: {', '.join(accepted)}."
                )
        seeded = {"random_state": self.seed} if "random_state" in accepted else {}
        return make_learner(self.method, **{**seeded, **self.params})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seed": self.seed,
            "data": dict(self.data),
            "method": {"name": self.method, "params": dict(self.params)},
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


def read_train_spec(path: str | Path) -> TrainSpec:
    """Read and check a train config (TOML); paths in it are relative to its folder."""
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
    method = _table(raw["method"], "[method]")
    _check_keys(method, ("name", "params"), "[method]")
    if "name" not in method:
        raise MetamedValueError('[method] needs name = "LEARNER" (e.g. "maml").')
    evaluation = None
    if "evaluation" in raw:
        section = _table(raw["evaluation"], "[evaluation]")
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
            raise MetamedValueError(
                f"[evaluation] draws must be a whole number >= 1, got {draws!r}."
            )
        split = section.get("split", "auto")
        if split not in ("auto", "loso", "random"):
            raise MetamedValueError(
                f"[evaluation] split must be auto, loso or random, got {split!r}."
            )
        evaluation = EvaluationSpec(tuple(sorted(set(shots))), draws, split)
    return TrainSpec(
        data=dict(_table(raw["data"], "[data]")),
        method=str(method["name"]),
        params=dict(_table(method.get("params", {}), "[method] params")),
        seed=raw.get("seed", 0),
        evaluation=evaluation,
        base_dir=path.parent,
    )


def load_train_cohort(spec: TrainSpec, data_dir: str | Path | None = None) -> Cohort:
    from metamed.data import cohort_from_table, load_dataset

    data = spec.data
    if "dataset" in data:
        options = _table(data.get("options", {}), "[data] options")
        return load_dataset(str(data["dataset"]), data_dir=data_dir, **options)
    table = Path(str(data["table"])).expanduser()
    if not table.is_absolute():
        table = spec.base_dir / table
    return cohort_from_table(
        table, task_col=data["task_col"], **{k: data[k] for k in _TABLE_KEYS if k in data}
    )


def _evaluate(
    spec: TrainSpec, taskset: TaskSet, dataset: str, progress: Progress | None
) -> dict[str, Any]:
    assert spec.evaluation is not None
    config = spec.evaluation.protocol(spec.seed)
    splits = make_splits(taskset, spec.evaluation.split, spec.seed)
    result = run_protocol(
        taskset, {spec.method: spec.learner()}, splits, config, dataset=dataset, progress=progress
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
    taskset = TaskSet(cohort, spec.data.get("task_col"))
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
