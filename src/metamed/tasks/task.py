"""`Task`: the model-ready rows of one task (a site, a condition, a patient, an assay)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamed.data.cohort import MAX_ABS_VALUE
from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.outcomes import BINARY, Outcome, as_outcome

__all__ = ["Task", "hold_out_rows", "check_task_list", "check_support_task"]


def _as_float_array(value: object, what: str, task: str) -> np.ndarray:
    """``value`` as a float array (float32 kept as is), or a metamed error naming it."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        return value  # the common case (Preprocessor output, subsets): no copy
    if isinstance(value, (str, bytes)) or value is None:
        raise MetamedTypeError(
            f"Task '{task}': {what} must be an array of numbers, got {type(value).__name__}."
        )
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetamedTypeError(
            f"Task '{task}': {what} must be an array of numbers ({exc}); preprocess the "
            "table with Preprocessor first."
        ) from None


def _fits_float32(values: np.ndarray) -> bool:
    """Finite and within float32 range, so that a cast to float32 stays finite.

    The smallest and largest value say it without a temporary array (NaN propagates
    through both and compares False): on ToxCast's 617 assay tasks of 2,048 fingerprint
    columns the elementwise ``abs(values) <= max`` took 44 s of a 157 s run.
    """
    if values.size == 0:
        return True
    return bool(-MAX_ABS_VALUE <= values.min() and values.max() <= MAX_ABS_VALUE)


@dataclass(frozen=True, eq=False)
class Task:
    """Preprocessed features and outcomes of one task.

    Parameters
    ----------
    name : str
        Task identifier (site name, condition code, patient id, ...).
    X : ndarray of shape (n, d), float32
        Model inputs, already preprocessed (see :class:`metamed.data.Preprocessor`).
    y : ndarray of shape (n,), float32
        Outcome: 0/1 for binary tasks, real values for numeric ones, checked by the
        outcome type (:meth:`~metamed.outcomes.Outcome.check_labels`).
    outcome_type : Outcome or {"binary", "numeric"}, default BINARY
        A name is turned into the :class:`~metamed.outcomes.Outcome`.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    outcome_type: Outcome = BINARY

    def __post_init__(self) -> None:
        outcome = as_outcome(self.outcome_type, f"Task '{self.name}': outcome_type")
        object.__setattr__(self, "outcome_type", outcome)
        X = _as_float_array(self.X, "X", self.name)
        y = _as_float_array(self.y, "y", self.name).reshape(-1)
        if X.ndim != 2 or len(X) != len(y):
            raise MetamedValueError(
                f"Task '{self.name}': X must be 2-D with one row per outcome, got X{X.shape}, y{y.shape}."
            )
        if not _fits_float32(X):
            raise MetamedValueError(
                f"Task '{self.name}': features contain NaN, inf or values beyond float32 range "
                f"(±{MAX_ABS_VALUE:.2g}); impute or correct them first (Preprocessor does both)."
            )
        y = outcome.check_labels(y, f"Task '{self.name}'")
        object.__setattr__(self, "X", X.astype(np.float32, copy=False))
        object.__setattr__(self, "y", y.astype(np.float32, copy=False))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def prevalence(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")

    def subset(self, idx: np.ndarray) -> Task:
        """Rows ``idx`` of this task as a new task with the same name.

        Rows of a checked task need no second check: the new task is built without
        :meth:`__post_init__` (every support and query set of an episode is a subset, and
        the checks cost more than the indexing).
        """
        X, y = self.X[idx], self.y[idx]
        if X.ndim != 2:  # a scalar index would give one row as 1-D
            raise MetamedValueError(
                f"Task '{self.name}': subset needs an array of row positions, got {idx!r}."
            )
        task = object.__new__(Task)
        task.__dict__.update(name=self.name, X=X, y=y, outcome_type=self.outcome_type)
        return task


def hold_out_rows(
    tasks: list[Task], fraction: float, rng: np.random.Generator
) -> tuple[list[Task], list[Task]]:
    """Split each task's rows into a training part and a validation part.

    Used for early stopping when there are too few tasks to spare whole ones for
    meta-validation (four hospitals: three to train on, none to validate on).  Each of
    the outcome's support groups (the classes of a binary outcome) is split on its own,
    so that both parts keep the task's prevalence.
    """
    if not 0.0 < fraction < 1.0:
        raise MetamedValueError(f"fraction must be in (0, 1), got {fraction}.")
    train, val = [], []
    for task in tasks:
        groups = task.outcome_type.support_groups(task.y)
        held = np.concatenate([rng.permutation(g)[: int(round(fraction * len(g)))] for g in groups])
        keep = np.setdiff1d(np.arange(len(task)), held)
        train.append(task.subset(keep))
        val.append(task.subset(np.sort(held)))
    return train, val


_MAKE_TASKS_HINT = "build them with make_tasks(taskset, names, preprocessor)"


def check_task_list(tasks: object, what: str) -> list[Task]:
    """``tasks`` as a list of :class:`Task`, or a metamed error naming the argument.

    Parameters
    ----------
    tasks : object
        What the caller passed (a list or tuple of tasks is expected).
    what : str
        The argument's name in messages, e.g. ``"train_tasks"``.
    """
    if isinstance(tasks, Task):
        raise MetamedTypeError(
            f"{what} must be a list of Task objects, got one Task; wrap it: [task]."
        )
    if isinstance(tasks, (str, bytes, np.ndarray)) or not isinstance(tasks, (list, tuple)):
        raise MetamedTypeError(
            f"{what} must be a list of Task objects ({_MAKE_TASKS_HINT}), got "
            f"{type(tasks).__name__}."
        )
    for i, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise MetamedTypeError(
                f"{what}[{i}] is {type(task).__name__}, not a Task; {_MAKE_TASKS_HINT}."
            )
    return list(tasks)


def check_support_task(support: object) -> Task:
    """``support`` when it is a :class:`Task`, else a metamed error naming the argument."""
    if not isinstance(support, Task):
        raise MetamedTypeError(
            "support must be a Task holding the labelled examples (episode.support, or "
            f"Task(name, X, y)), got {type(support).__name__}."
        )
    return support
