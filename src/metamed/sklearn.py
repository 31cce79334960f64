"""scikit-learn estimators over metamed's learners, for users who think in ``fit(X, y)``.

::

    from metamed.sklearn import MetaClassifier

    meta = MetaClassifier(MAML(random_state=0)).fit(X, y, groups=site)  # meta-train on sites
    model = meta.adapt(X_support, y_support)     # an ordinary fitted scikit-learn classifier
    model.predict_proba(X_new)                   # shape (n, 2), columns in model.classes_
    cross_val_score(model, X_site, y_site)       # each fold adapts from its training rows

:class:`MetaClassifier` / :class:`MetaRegressor` meta-train a learner on the tasks that
``groups`` marks (a hospital, a condition, a patient per row); ``adapt`` returns an
:class:`AdaptedClassifier` / :class:`AdaptedRegressor`, a complete scikit-learn
estimator: ``classes_``, ``predict_proba`` of shape (n, 2), ``predict``, ``score``, inside
:class:`sklearn.pipeline.Pipeline`, :func:`~sklearn.model_selection.cross_val_score` and
:class:`~sklearn.calibration.CalibratedClassifierCV`.

What ``fit`` means for an adapted estimator: **adapt** the meta-trained learner to the
rows given (they are the support set); the meta-trained learner is a fixed parameter. So
a clone (what cross-validation and calibration make per fold) shares the meta-trained
learner, never meta-trains again, and adapts from its fold's rows: ``adapt`` never changes
the learner (checked for every learner in ``tests/learners/test_contract.py``), so sharing
is safe. A learner that uses no meta-training (``local-logreg``, ``local-gbm``) needs no
meta-training here either.

Why a layer and not metamed's own contract: ``AdaptedModel.predict_proba`` gives P(y = 1)
of shape (n,) and labels 0/1, and the protocol, reports, artifacts and the service rely
on it; scikit-learn wants (n, 2) in ``classes_`` order, any two labels, ``fit`` on
arrays. Translating in one module keeps both contracts whole (docs/design.md, "scikit-learn").
This module depends on :mod:`metamed.learners` and below only. Features must be numbers
(impute and encode first: :class:`metamed.data.Preprocessor`, or a scikit-learn
transformer fitted on the meta-training rows, then used in front of the adapted model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from metamed.errors import MetamedValueError, NotFittedError
from metamed.learners import AdaptedModel, MetaLearner, make_learner
from metamed.outcomes import BINARY, NUMERIC, Outcome
from metamed.tasks import Task

__all__ = ["AdaptedClassifier", "AdaptedRegressor", "MetaClassifier", "MetaRegressor"]


def _learner(learner: MetaLearner | str) -> MetaLearner:
    """A learner given by name (``"maml"``) or as an instance."""
    if isinstance(learner, str):
        return make_learner(learner)
    if not isinstance(learner, MetaLearner):
        raise MetamedValueError(
            f"learner must be a metamed learner (e.g. MAML()) or its name (e.g. 'maml'), "
            f"got {type(learner).__name__}."
        )
    return learner


def _two_classes(who: str, classes: np.ndarray) -> str:
    kind = "one class" if len(classes) == 1 else f"{len(classes)} classes"
    return (
        f"Only binary classification is supported. {who} models a binary outcome: y must "
        f"hold two classes, got {kind} ({', '.join(map(str, classes[:5]))}); every task "
        "and support set needs patients of both outcomes."
    )


def _adapt(learner: MetaLearner, X: np.ndarray, y: np.ndarray, outcome: Outcome) -> AdaptedModel:
    """``learner`` adapted to the support rows ``(X, y)`` (y already 0/1 or numeric)."""
    support = Task("support", X.astype(np.float32), y.astype(np.float32), outcome_type=outcome)
    if not learner.uses_meta_training:
        # a support-only baseline: its meta_fit only records the input width and outcome
        learner = learner.clone().meta_fit([support])
    elif not learner.is_fitted():
        raise NotFittedError(
            f"{type(learner).__name__} is not meta-trained; meta-train it first "
            "(MetaClassifier(learner).fit(X, y, groups=...), then .adapt(X_support, y_support))."
        )
    return learner.adapt(support)


class _Adapted(BaseEstimator):
    """Shared part: a meta-trained learner as a fixed parameter, ``fit`` = adapt."""

    _outcome: Outcome

    def __init__(self, learner: MetaLearner | str = "local-logreg") -> None:
        self.learner = learner

    def __sklearn_clone__(self) -> _Adapted:
        # A clone is unfitted (no model_) but keeps the *same* meta-trained learner: cloning
        # it the usual way would give an untrained learner (scikit-learn's FrozenEstimator
        # keeps its estimator the same way).
        return type(self)(learner=self.learner)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # Not the learner's own hyperparameters (learner__inner_lr): changing them would not
        # re-meta-train it. Tune those on MetaClassifier / MetaRegressor.
        return {"learner": self.learner}

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        self.model_ = _adapt(_learner(self.learner), X, y, self._outcome)

    def _rows(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return validate_data(self, X, reset=False, dtype=np.float64)

    def __sklearn_tags__(self) -> Any:  # sklearn's Tags (sklearn publishes no types)
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False  # impute first: every metamed model refuses NaN
        return tags


class AdaptedClassifier(ClassifierMixin, _Adapted):
    """A meta-trained learner adapted to one task, as a scikit-learn binary classifier.

    ``fit(X, y)`` adapts ``learner`` to the rows ``(X, y)`` (the support set: both classes,
    any two labels); ``predict_proba`` gives one column per entry of ``classes_``.

    Parameters
    ----------
    learner : MetaLearner or str, default "local-logreg"
        A meta-trained metamed learner of a binary outcome, or one that needs no
        meta-training (``local-logreg``, ``local-gbm``, by instance or name).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the one whose probability the
        underlying model gives.
    model_ : metamed.learners.BinaryModel
        The adapted metamed model (saveable: ``model_.save(path)``).
    n_features_in_ : int
    """

    _outcome = BINARY

    def fit(self, X: Any, y: Any) -> AdaptedClassifier:
        """Adapt the learner to the support rows ``(X, y)``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise MetamedValueError(_two_classes(type(self).__name__, self.classes_))
        self._adapt(X, codes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]``, shape (n, 2)."""
        rows = self._rows(X)
        p = np.asarray(self.model_.predict_proba(rows), dtype=np.float64)  # type: ignore[attr-defined]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable label per row (a 0.5 threshold), from ``classes_``."""
        p = self.predict_proba(X)[:, 1]  # first: it checks that the model is fitted
        return self.classes_[(p >= 0.5).astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class AdaptedRegressor(RegressorMixin, _Adapted):
    """A meta-trained learner adapted to one task, as a scikit-learn regressor.

    ``fit(X, y)`` adapts ``learner`` (meta-trained on a numeric outcome, or a support-only
    baseline) to the support rows; ``predict`` gives values in ``y``'s units and ``score``
    is R².

    Attributes
    ----------
    model_ : metamed.learners.AdaptedModel
        The adapted metamed model.
    n_features_in_ : int
    """

    _outcome = NUMERIC

    def fit(self, X: Any, y: Any) -> AdaptedRegressor:
        """Adapt the learner to the support rows ``(X, y)``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._adapt(X, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """One value per row, in the units of the ``y`` it was fitted on."""
        rows = self._rows(X)
        return np.asarray(self.model_.predict(rows), dtype=np.float64)


class _Meta(BaseEstimator):
    """Shared part: meta-train on the tasks ``groups`` marks, then adapt."""

    _outcome: Outcome
    _adapted: type[_Adapted]

    def __init__(self, learner: MetaLearner | str = "maml") -> None:
        self.learner = learner

    def _tasks(self, X: np.ndarray, y: np.ndarray, groups: Any) -> list[Task]:
        if groups is None:
            raise MetamedValueError(
                f"{type(self).__name__}.fit needs groups: the task of each row (hospital, "
                "condition, patient), e.g. fit(X, y, groups=site)."
            )
        groups = np.asarray(groups)
        if groups.shape != (len(y),):
            raise MetamedValueError(
                f"groups must give one task per row ({len(y)} rows), got shape {groups.shape}."
            )
        names = list(dict.fromkeys(groups.tolist()))
        if len(names) < 2:
            raise MetamedValueError(
                f"groups holds {len(names)} task; meta-training needs several tasks (e.g. "
                "one per hospital)."
            )
        X32 = X.astype(np.float32)
        return [
            Task(str(g), X32[groups == g], y[groups == g].astype(np.float32), self._outcome)
            for g in names
        ]

    def _meta_fit(self, X: np.ndarray, y: np.ndarray, groups: Any) -> None:
        learner = clone(_learner(self.learner))
        self.learner_ = learner.meta_fit(self._tasks(X, y, groups))
        self.n_tasks_ = len(np.unique(np.asarray(groups)))


class MetaClassifier(_Meta):
    """Meta-train a metamed learner on many tasks; ``adapt`` gives a classifier for a new one.

    Parameters
    ----------
    learner : MetaLearner or str, default "maml"
        The learner (unfitted; it is cloned) or its name; its hyperparameters are nested
        parameters (``learner__inner_lr``), so ``GridSearchCV`` can tune them.

    Attributes
    ----------
    learner_ : MetaLearner
        The meta-trained learner.
    classes_ : ndarray of shape (2,)
    n_tasks_ : int
    """

    _outcome = BINARY

    def fit(self, X: Any, y: Any, groups: Any = None) -> MetaClassifier:
        """Meta-train on the tasks that ``groups`` marks (one label per row)."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise MetamedValueError(_two_classes(type(self).__name__, self.classes_))
        self._meta_fit(X, codes, groups)
        return self

    def adapt(self, X_support: Any, y_support: Any) -> AdaptedClassifier:
        """A fitted :class:`AdaptedClassifier` for the task whose labelled rows these are."""
        check_is_fitted(self, "learner_")
        unknown = set(np.unique(y_support).tolist()) - set(self.classes_.tolist())
        if unknown:
            raise MetamedValueError(
                f"y_support holds labels {sorted(map(str, unknown))} that meta-training never "
                f"saw; its labels are {', '.join(map(str, self.classes_))}."
            )
        return AdaptedClassifier(learner=self.learner_).fit(X_support, y_support)


class MetaRegressor(_Meta):
    """Meta-train on many tasks of a numeric outcome; ``adapt`` gives a regressor for a new one.

    Parameters and attributes as :class:`MetaClassifier` (no ``classes_``).
    """

    _outcome = NUMERIC

    def fit(self, X: Any, y: Any, groups: Any = None) -> MetaRegressor:
        """Meta-train on the tasks that ``groups`` marks (one label per row)."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._meta_fit(X, np.asarray(y, dtype=np.float64), groups)
        return self

    def adapt(self, X_support: Any, y_support: Any) -> AdaptedRegressor:
        """A fitted :class:`AdaptedRegressor` for the task whose labelled rows these are."""
        check_is_fitted(self, "learner_")
        return AdaptedRegressor(learner=self.learner_).fit(X_support, y_support)
