"""The one learner contract shared by meta-learners and baselines.

::

    learner = MAML(inner_steps=5, inner_lr=0.1, random_state=0)
    learner.meta_fit(train_tasks, val_tasks=val_tasks)   # returns self; state ends in "_"
    model = learner.adapt(support)                        # new object; never mutates learner
    p = model.predict_proba(query_X)
    learner.save(path); MAML.load(path)

``__init__`` stores hyperparameters only; they are validated in ``meta_fit`` (the
scikit-learn estimator contract), so that ``get_params`` / cloning stay trivial.
Randomness enters only through ``random_state``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from metamed.errors import MetamedValueError, NotFittedError, unknown_name
from metamed.tasks.task import Task, check_support_task, check_task_list

__all__ = ["AdaptedModel", "MetaLearner", "register", "LEARNERS", "make_learner", "learner_names"]

LEARNERS: dict[str, type[MetaLearner]] = {}


def register(name: str):
    """Class decorator adding a learner to the registry under ``name`` (CLI method name)."""

    def wrap(cls: type[MetaLearner]) -> type[MetaLearner]:
        cls.name = name
        LEARNERS[name] = cls
        return cls

    return wrap


def learner_names() -> list[str]:
    return sorted(LEARNERS)


def make_learner(name: str, **params: Any) -> MetaLearner:
    """Instantiate a registered learner by name, with a "did you mean" for typos."""
    if name not in LEARNERS:
        raise unknown_name("method", name, LEARNERS)
    return LEARNERS[name](**params)


class AdaptedModel(ABC):
    """A model adapted to one task.  ``predict_proba`` returns P(y = 1) per row, shape (n,)."""

    outcome_type: str = "binary"

    @abstractmethod
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels (binary) from a 0.5 threshold on ``predict_proba``."""
        return (self.predict_proba(X) >= 0.5).astype(np.int64)


class MetaLearner(ABC):
    """Base class: hyperparameters in ``__init__``, learned state in attributes ending in ``_``."""

    name: ClassVar[str] = "learner"
    #: True for learners that do not use the training tasks at adaptation (local baselines).
    uses_meta_training: ClassVar[bool] = True

    # -- scikit-learn style parameter handling -------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self) -> MetaLearner:
        """A new, unfitted learner with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the contract ----------------------------------------------------------------------
    @abstractmethod
    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> MetaLearner:
        """Learn from training tasks; returns ``self``."""

    @abstractmethod
    def adapt(self, support: Task) -> AdaptedModel:
        """Return a new model adapted to ``support``; must not change ``self``."""

    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} is not meta-trained yet; call meta_fit(train_tasks) first."
            )

    @staticmethod
    def _check_tasks(tasks: list[Task], what: str = "train_tasks") -> int:
        """Validate a task list; return the shared feature count."""
        tasks = check_task_list(tasks, what)
        if not tasks:
            raise MetamedValueError(f"{what} is empty; meta-training needs at least one task.")
        dims = {t.n_features for t in tasks}
        if len(dims) != 1:
            raise MetamedValueError(
                f"{what}: tasks have different feature counts {sorted(dims)}; preprocess all tasks "
                "with the same fitted Preprocessor."
            )
        return dims.pop()

    def _check_support(self, support: Task, n_features: int) -> None:
        check_support_task(support)
        if support.n_features != n_features:
            raise MetamedValueError(
                f"Support set has {support.n_features} features, the learner was trained on "
                f"{n_features}. Preprocess it with the Preprocessor fitted at meta-training."
            )
        if len(support) == 0:
            raise MetamedValueError("The support set is empty; adapt needs labelled examples.")
        if support.outcome_type == "binary" and len(np.unique(support.y)) < 2:
            raise MetamedValueError(
                f"The support set for task '{support.name}' holds one class only "
                f"(all y = {int(support.y[0])}); give at least one patient of each class."
            )

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Save hyperparameters and learned state to one file."""
        self._check_fitted()
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        # Callables among the hyperparameters (a ``progress`` callback) are run-time hooks,
        # not model state, and lambdas cannot be pickled: they are saved as None.
        params = {k: (None if callable(v) else v) for k, v in self.get_params().items()}
        torch.save(
            {"class": type(self).__name__, "name": self.name, "params": params, "state": state},
            Path(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> MetaLearner:
        """Load a learner saved with :meth:`save` (call on the class or on ``MetaLearner``)."""
        blob = torch.load(Path(path), weights_only=False)
        target = LEARNERS.get(blob["name"], cls)
        if cls is not MetaLearner and not issubclass(target, cls):
            raise MetamedValueError(
                f"{path} holds a {blob['class']}, not a {cls.__name__}; load it with {blob['class']}.load."
            )
        learner = target(**blob["params"])
        for key, value in blob["state"].items():
            setattr(learner, key, value)
        return learner
