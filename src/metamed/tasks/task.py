"""`Task`: the model-ready rows of one task (a site, a condition, a patient, an assay)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamed.errors import MetamedValueError

__all__ = ["Task", "hold_out_rows"]


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
        Outcome: 0/1 for binary tasks, real values for numeric ones.
    outcome_type : {"binary", "numeric"}
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    outcome_type: str = "binary"

    def __post_init__(self) -> None:
        X = np.asarray(self.X, dtype=np.float32)
        y = np.asarray(self.y, dtype=np.float32).reshape(-1)
        if X.ndim != 2 or len(X) != len(y):
            raise MetamedValueError(
                f"Task '{self.name}': X must be 2-D with one row per outcome, got X{X.shape}, y{y.shape}."
            )
        if not np.isfinite(X).all():
            raise MetamedValueError(
                f"Task '{self.name}': features contain NaN or inf after preprocessing; "
                "impute or drop them first."
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def prevalence(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")

    def subset(self, idx: np.ndarray) -> Task:
        """Rows ``idx`` of this task as a new task with the same name."""
        return Task(self.name, self.X[idx], self.y[idx], self.outcome_type)


def hold_out_rows(
    tasks: list[Task], fraction: float, rng: np.random.Generator
) -> tuple[list[Task], list[Task]]:
    """Split each task's rows into a training part and a validation part.

    Used for early stopping when there are too few tasks to spare whole ones for
    meta-validation (four hospitals: three to train on, none to validate on).  Binary
    tasks are split per class, so that both parts keep the task's prevalence.
    """
    if not 0.0 < fraction < 1.0:
        raise MetamedValueError(f"fraction must be in (0, 1), got {fraction}.")
    train, val = [], []
    for task in tasks:
        if task.outcome_type == "binary":
            groups = [np.flatnonzero(task.y > 0.5), np.flatnonzero(task.y <= 0.5)]
        else:
            groups = [np.arange(len(task))]
        held = np.concatenate([rng.permutation(g)[: int(round(fraction * len(g)))] for g in groups])
        keep = np.setdiff1d(np.arange(len(task)), held)
        train.append(task.subset(keep))
        val.append(task.subset(np.sort(held)))
    return train, val
