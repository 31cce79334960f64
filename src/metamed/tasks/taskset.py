"""`TaskSet`: a cohort cut into tasks by a group column, and splits *by task*."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort
from metamed.data.preprocess import Preprocessor, outcome_array
from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.tasks.task import Task

__all__ = ["TaskSet", "TaskSplit", "make_tasks"]


@dataclass(frozen=True)
class TaskSplit:
    """Task names for meta-training, meta-validation (early stopping) and meta-testing."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in ("train", "val", "test"):
            for name in getattr(self, part):
                if name in seen:
                    raise MetamedValueError(
                        f"Task '{name}' is in both the {seen[name]} and {part} splits; "
                        "splits must be disjoint by task."
                    )
                seen[name] = part


class TaskSet:
    """Rows of a cohort grouped into tasks by ``task_col`` (a group column of the schema)."""

    def __init__(self, cohort: Cohort, task_col: str | None = None) -> None:
        if not isinstance(cohort, Cohort):
            hint = (
                "; build one with cohort_from_table(frame, task_col=..., outcome_col=...)"
                if isinstance(cohort, pd.DataFrame)
                else " (from cohort_from_table or load_dataset)"
            )
            raise MetamedTypeError(
                f"TaskSet: cohort must be a metamed Cohort{hint}, got {type(cohort).__name__}."
            )
        if task_col is not None and not isinstance(task_col, str):
            raise MetamedTypeError(
                f"TaskSet: task_col must be a column name (str), got {type(task_col).__name__}."
            )
        schema = cohort.schema
        if task_col is None:
            if not schema.group:
                raise MetamedValueError(
                    f"{cohort.name}: the schema declares no group column, so there are no tasks. "
                    "Name one with task_col (e.g. the site or hospital column)."
                )
            task_col = schema.group[0]
        if task_col not in schema.group:
            raise MetamedValueError(
                f"{cohort.name}: task column '{task_col}' is not a group column of the schema."
                f"{did_you_mean(task_col, schema.group)} Group columns: {', '.join(schema.group) or 'none'}."
            )
        self.cohort = cohort
        self.task_col = task_col
        keys = cohort.frame[task_col].astype(str)
        # One pass over the rows (grouping), not one per task: condition cohorts have
        # hundreds of tasks (661 diagnosis categories in Diabetes-130).
        positions = {
            str(name): rows for name, rows in keys.groupby(keys, sort=False).indices.items()
        }
        self._rows: dict[str, np.ndarray] = {
            name: np.asarray(positions[name], dtype=np.int64) for name in sorted(positions)
        }

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, name: str) -> np.ndarray:
        """Positions (0-based) in the cohort table of task ``name``'s patients, in task order.

        Row ``i`` of the task's :meth:`frame` (and of the task built from it by
        :func:`~metamed.data.make_tasks`) is row ``rows(name)[i]`` of the cohort table.
        """
        if name not in self._rows:
            raise MetamedValueError(
                f"Unknown task '{name}'.{did_you_mean(name, self.names)} Tasks: {', '.join(self.names)}."
            )
        return self._rows[name].copy()

    def frame(self, name: str) -> pd.DataFrame:
        return self.cohort.frame.iloc[self.rows(name)]

    def frames(self, names: tuple[str, ...] | list[str]) -> pd.DataFrame:
        """Rows of several tasks stacked (for fitting preprocessing on meta-train tasks)."""
        for name in names:
            if name not in self._rows:
                self.frame(name)  # the unknown-task error
        rows = [self._rows[n] for n in names]
        return self.cohort.frame.iloc[np.concatenate(rows) if rows else []]

    def summary(self) -> pd.DataFrame:
        """One row per task: number of patients and the outcome's summary (prevalence)."""
        y = self.cohort.frame[self.cohort.schema.outcome]
        describe = self.cohort.schema.outcome_type.describe
        rows = [
            {"task": name, "n": len(idx), **describe(y.iloc[idx])}
            for name, idx in self._rows.items()
        ]
        return pd.DataFrame(rows)

    def split(
        self, test: list[str] | tuple[str, ...], val_fraction: float = 0.0, seed: int = 0
    ) -> TaskSplit:
        """Hold out ``test`` tasks; move a share of the rest to meta-validation."""
        for name in test:
            self.frame(name)  # raises a clear error for unknown names
        rest = [n for n in self.names if n not in test]
        rng = np.random.default_rng(seed)
        n_val = int(round(val_fraction * len(rest)))
        if n_val >= len(rest) and rest:
            n_val = len(rest) - 1
        val = sorted(rng.choice(rest, n_val, replace=False).tolist()) if n_val else []
        train = [n for n in rest if n not in val]
        if not train:
            raise MetamedValueError("No task is left for meta-training; hold out fewer tasks.")
        return TaskSplit(tuple(train), tuple(val), tuple(test))

    def random_split(
        self, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0
    ) -> TaskSplit:
        """Random split of tasks into train / val / test (for cohorts with many tasks)."""
        rng = np.random.default_rng(seed)
        names = rng.permutation(self.names).tolist()
        n_test = max(1, int(round(test_fraction * len(names))))
        test = sorted(names[:n_test])
        return self.split(test, val_fraction=val_fraction / max(1e-9, 1 - test_fraction), seed=seed)

    def leave_one_out(self, val_fraction: float = 0.0, seed: int = 0) -> Iterator[TaskSplit]:
        """Leave-one-group-out: each task in turn is the single meta-test task."""
        if len(self) < 2:
            raise MetamedValueError(
                f"Leave-one-out needs at least 2 tasks, {self.cohort.name} has {len(self)}."
            )
        for name in self.names:
            yield self.split([name], val_fraction=val_fraction, seed=seed)


def make_tasks(taskset: TaskSet, names: Sequence[str], preprocessor: Preprocessor) -> list[Task]:
    """Model-ready :class:`~metamed.tasks.Task` objects for the tasks ``names``.

    Parameters
    ----------
    taskset : TaskSet
        The cohort cut into tasks.
    names : sequence of str
        Task names (e.g. ``split.train``), in the order wanted.
    preprocessor : Preprocessor
        Already fitted, normally on ``taskset.frames(split.train)``.

    Returns
    -------
    list of Task
    """
    if not isinstance(taskset, TaskSet):
        hint = " (build one with TaskSet(cohort, task_col))" if hasattr(taskset, "schema") else ""
        raise MetamedTypeError(
            f"make_tasks: taskset must be a metamed TaskSet{hint}, got {type(taskset).__name__}."
        )
    if not isinstance(preprocessor, Preprocessor):
        raise MetamedTypeError(
            "make_tasks: preprocessor must be a fitted metamed Preprocessor, got "
            f"{type(preprocessor).__name__}."
        )
    preprocessor._check_fitted()
    schema = taskset.cohort.schema
    if tuple(preprocessor.schema.features) != tuple(schema.features):
        raise MetamedValueError(
            f"The preprocessor was built for features {list(preprocessor.schema.features)[:5]}... "
            f"but cohort '{taskset.cohort.name}' has {list(schema.features)[:5]}...; fit a "
            "Preprocessor on this cohort's schema."
        )
    if isinstance(names, str):
        raise MetamedTypeError(
            f"names must be a list of task names, got the string {names!r}; wrap it: [{names!r}]."
        )
    if not isinstance(names, (Sequence, np.ndarray)):
        raise MetamedTypeError(
            f"make_tasks: names must be a list of task names (e.g. split.train), got "
            f"{type(names).__name__}."
        )
    tasks = []
    for name in names:
        frame = taskset.frame(name)
        tasks.append(
            Task(
                name=str(name),
                X=preprocessor.transform(frame),
                y=outcome_array(frame, schema),
                outcome_type=schema.outcome_type,
            )
        )
    return tasks
