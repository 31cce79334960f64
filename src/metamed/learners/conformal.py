"""Conformal prediction sets and intervals, calibrated on a site's own support rows.

A risk of 0.3 says nothing about how far it can be trusted at a new hospital.
:func:`conformal_adapt` adapts a meta-learner to a site's labelled support rows and
calibrates, on those same rows, a prediction *set* (binary outcomes: ``{0}``, ``{1}``,
``{0, 1}`` or, rarely, empty) or *interval* (numeric outcomes) that holds the patient's
true outcome with a stated probability, the ``coverage`` target (default 90%)::

    model = conformal_adapt(learner, support, coverage=0.9)
    p = model.predict_proba(X)              # the adapted model's risk, as without conformal
    sets = model.predict_set(X)             # (n, 2) bool: does the set hold 0, does it hold 1
    lo_hi = model.predict_interval(X)       # numeric outcomes: (n, 2)

Scores (nonconformity): ``1 - p_y(x)`` for binary outcomes (the probability the model
gives the true class; Sadinle et al. 2019), ``|y - prediction|`` for numeric ones.

Methods, chosen by the size ``n`` of the support set (``method="auto"``):

- ``"split"`` (n >= :data:`SPLIT_MIN_ROWS`): the served model is adapted on 70% of the
  rows and scored on the other 30%.  Coverage is at least the target, marginally over
  the site's patients, and at most target + 1/(n_cal + 1) (Vovk et al. 2005; Lei et al.
  2018), provided the support rows and the new patients are exchangeable (drawn alike
  from the same site).
- ``"cv+"`` (small n): the served model is adapted on *all* rows, so none are spent on
  calibration; each row is scored by a model adapted without its fold (10 folds), and
  those fold models are kept to build the set of a new patient (CV+; Barber et al. 2021
  for intervals, Romano et al. 2020 for classification sets).
- ``"jackknife+"`` (n <= :data:`JACKKNIFE_MAX_ROWS`): CV+ with one row per fold.

Guarantees of the cross methods are weaker on paper (coverage at least ``1 - 2 alpha``
for jackknife+, with ``alpha = 1 - coverage``) and close to the target in practice; the
coverage on held-out sites is checked in ``tests/learners/test_conformal.py``.

The set of a new patient ``x`` holds label ``y`` when fewer than ``coverage * (n + 1)``
calibration rows ``i`` have a score below the score ``(x, y)`` gets from row ``i``'s
model: one rule for all three methods (split: every row's model is the served one).
Binary folds are stratified so that every fold model sees both classes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.learners.base import (
    AdaptedModel,
    Adapter,
    BinaryModel,
    nested_model,
    nested_model_state,
)
from metamed.outcomes import BINARY, NUMERIC, Outcome
from metamed.tasks.task import Task, check_support_task

__all__ = [
    "CONFORMAL_METHODS",
    "ConformalIntervalModel",
    "ConformalModel",
    "ConformalSetModel",
    "DEFAULT_COVERAGE",
    "JACKKNIFE_MAX_ROWS",
    "SPLIT_MIN_ROWS",
    "conformal_adapt",
    "min_support_rows",
]

DEFAULT_COVERAGE = 0.9
CONFORMAL_METHODS = ("auto", "split", "cv+", "jackknife+")
#: From this many support rows on, 30% of them are worth spending on calibration alone.
SPLIT_MIN_ROWS = 500
#: Up to this many rows, every row is its own fold (jackknife+).
JACKKNIFE_MAX_ROWS = 20
#: Folds of CV+ between the two.
CV_FOLDS = 10
#: Share of the rows kept for calibration by the split method.
SPLIT_CALIBRATION_FRACTION = 0.3


def _check_coverage(coverage: Any) -> float:
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.floating)):
        raise MetamedTypeError(f"coverage must be a number between 0 and 1, got {coverage!r}.")
    if not 0.0 < float(coverage) < 1.0:
        raise MetamedValueError(
            f"coverage must lie strictly between 0 and 1 (e.g. 0.9 for 90%), got {coverage}."
        )
    return float(coverage)


def min_support_rows(coverage: float) -> int:
    """Fewest calibration rows with which a set can reach ``coverage`` without holding everything.

    With ``n`` rows the largest attainable quantile is ``n / (n + 1)``, so ``n`` must be
    at least ``coverage / (1 - coverage)`` (9 rows for 90%, 19 for 95%).
    """
    return math.ceil(_check_coverage(coverage) / (1.0 - coverage) - 1e-9)


def _rank(coverage: float, n: int) -> int:
    """Number of calibration scores a test score may exceed: ``ceil(coverage (n + 1)) - 1``."""
    return math.ceil(coverage * (n + 1) - 1e-9) - 1


def _stratified_folds(
    y: np.ndarray, n_folds: int, outcome: Outcome, rng: np.random.Generator
) -> np.ndarray:
    """Fold index of each row, dealt out group by group (binary: class by class)."""
    fold = np.empty(len(y), dtype=np.int64)
    groups = outcome.support_groups(y)
    start = 0
    for group in groups:
        order = rng.permutation(group)
        fold[order] = (start + np.arange(len(order))) % n_folds
        start += len(order)
    return fold


def _check_classes(support: Task, method: str) -> None:
    """Every support group (binary: each class) needs 2 rows, so each fold model sees it."""
    classes = support.outcome_type.classes
    if classes is None:
        return
    counts = [int(np.sum(support.y == c)) for c in classes]
    if min(counts) < 2:
        held = " and ".join(f"{n} with outcome {c:g}" for n, c in zip(counts, classes, strict=True))
        raise MetamedValueError(
            f"The support set holds {held}; conformal calibration ({method}) needs at least "
            "2 patients of each, so that every model it adapts sees every class."
        )


def _scores(model: AdaptedModel, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nonconformity: 1 - P(true class) for a binary model, |y - prediction| otherwise."""
    if isinstance(model, BinaryModel):
        p = np.asarray(model.predict_proba(X), dtype=np.float64)
        return np.where(y > 0.5, 1.0 - p, p)
    return np.abs(y - np.asarray(model.predict(X), dtype=np.float64))


def conformal_adapt(
    learner: Adapter,
    support: Task,
    coverage: float = DEFAULT_COVERAGE,
    method: str = "auto",
    random_state: int = 0,
) -> ConformalModel:
    """Adapt ``learner`` to ``support`` and calibrate sets or intervals on the same rows.

    Parameters
    ----------
    learner : MetaLearner, or anything with its ``adapt``
        Meta-trained; it is not changed.
    support : Task
        The site's labelled rows.  For the stated coverage they must be a random sample
        of the patients the model will see (not, say, the site's hardest cases).
    coverage : float, default 0.9
        Target probability that a set or interval holds the true outcome.
    method : {"auto", "split", "cv+", "jackknife+"}
        See the module docstring; ``"auto"`` chooses by the number of rows.
    random_state : int, default 0
        Seeds the split or the folds.

    Raises
    ------
    MetamedValueError
        Too few rows for the coverage (:func:`min_support_rows`), or fewer than 2
        patients of a class (binary outcomes).
    """
    coverage = _check_coverage(coverage)
    support = check_support_task(support)
    if method not in CONFORMAL_METHODS:
        raise MetamedValueError(
            f"Unknown conformal method '{method}'; use one of {', '.join(CONFORMAL_METHODS)}."
        )
    n = len(support)
    if method == "auto":
        method = (
            "split" if n >= SPLIT_MIN_ROWS else "jackknife+" if n <= JACKKNIFE_MAX_ROWS else "cv+"
        )
    outcome = support.outcome_type
    rng = np.random.default_rng([random_state, n])
    needed = min_support_rows(coverage)
    if method == "split":
        n_cal = int(round(SPLIT_CALIBRATION_FRACTION * n))
        if n_cal < needed:
            raise MetamedValueError(
                f"Split conformal at {coverage:.0%} coverage needs at least {needed} calibration "
                f"rows, i.e. {math.ceil(needed / SPLIT_CALIBRATION_FRACTION)} support rows; got "
                f"{n}. Use method='cv+' (which calibrates on every row) or add patients."
            )
        _check_classes(support, method)
        # Stratified: ~30% of each class is set aside, so both parts hold both classes.
        part = _stratified_folds(support.y, 10, outcome, rng) < round(
            10 * SPLIT_CALIBRATION_FRACTION
        )
        cal = np.flatnonzero(part)
        model = learner.adapt(support.subset(np.flatnonzero(~part)))
        scores = _scores(model, support.X[cal], support.y[cal])
        return _wrap(model, [], np.zeros(len(cal), np.int64), scores, coverage, method)
    if n < needed:
        raise MetamedValueError(
            f"{coverage:.0%} coverage needs at least {needed} support patients (with n "
            f"patients the most a set can promise is n/(n+1)); got {n}. Add patients or lower "
            "the coverage."
        )
    _check_classes(support, method)
    n_folds = n if method == "jackknife+" else min(CV_FOLDS, n)
    fold = _stratified_folds(support.y, n_folds, outcome, rng)
    model = learner.adapt(support)
    fold_models = []
    scores = np.empty(n, dtype=np.float64)
    for k in range(n_folds):
        held = np.flatnonzero(fold == k)
        fold_model = learner.adapt(support.subset(np.flatnonzero(fold != k)))
        scores[held] = _scores(fold_model, support.X[held], support.y[held])
        fold_models.append(fold_model)
    return _wrap(model, fold_models, fold, scores, coverage, method)


def _wrap(model: AdaptedModel, *args: Any) -> ConformalModel:
    kind: type[ConformalModel] = (
        ConformalSetModel if isinstance(model, BinaryModel) else ConformalIntervalModel
    )
    return kind(model, *args)


class ConformalModel(AdaptedModel):
    """An adapted model with conformal sets (binary) or intervals (numeric) around it.

    Built by :func:`conformal_adapt`: a :class:`ConformalSetModel` for a binary outcome
    (``predict_proba`` and ``predict_set``), a :class:`ConformalIntervalModel` for a
    numeric one (``predict`` and ``predict_interval``); predictions are the served
    model's.

    Parameters
    ----------
    model : AdaptedModel
        The model whose risks are served.
    fold_models : list of AdaptedModel
        CV+ / jackknife+: the model that scored each fold; empty for split conformal
        (every calibration row was scored by ``model``).
    fold_of : ndarray of int
        For each calibration row, its index in ``fold_models``.
    scores : ndarray of float
        Nonconformity score of each calibration row.
    coverage : float
        Target coverage of the sets or intervals.
    method : str
        ``"split"``, ``"cv+"`` or ``"jackknife+"``.
    """

    def __init__(
        self,
        model: AdaptedModel,
        fold_models: list[AdaptedModel],
        fold_of: np.ndarray,
        scores: np.ndarray,
        coverage: float,
        method: str,
    ) -> None:
        self.model = model
        self.fold_models = list(fold_models)
        self.fold_of = np.asarray(fold_of, dtype=np.int64)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.coverage = float(coverage)
        self.method = method
        self.n_features = model.n_features
        if model.outcome_type != self.outcome_type:
            raise MetamedValueError(
                f"{type(self).__name__} wraps a model of a {self.outcome_type} outcome, got "
                f"one of a {model.outcome_type} outcome."
            )

    @property
    def n_calibration(self) -> int:
        """Number of support rows the sets are calibrated on."""
        return len(self.scores)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def _predictions(
        self, X: np.ndarray, predict: str
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The served model's predictions for X and, for each scoring model, (its
        predictions for X, its calibration scores sorted).

        The fold models answer in one computation where their class allows it
        (:meth:`AdaptedModel.joint`: the MLPs' one batched forward pass instead of ten),
        equal to their own answers up to float32 rounding; the served model answers on
        its own, so its risks are exactly ``predict_proba``'s.
        """
        prepared = self.__dict__.get("_prepared")  # not state: see __getstate__
        if prepared is None:  # one assignment, so that threads see all of it or none
            k = len(self.fold_models) or 1
            sorted_scores = [np.sort(self.scores[self.fold_of == j]) for j in range(k)]
            joint = type(self.fold_models[0]).joint(self.fold_models) if self.fold_models else None
            prepared = self.__dict__["_prepared"] = (sorted_scores, joint)
        sorted_scores, joint = prepared
        served = np.asarray(getattr(self.model, predict)(X), dtype=np.float64)
        if not self.fold_models:  # split: the served model scored every calibration row
            return served, [(served, sorted_scores[0])]
        folds = (
            list(joint(X))
            if joint is not None
            else [np.asarray(getattr(m, predict)(X), dtype=np.float64) for m in self.fold_models]
        )
        return served, list(zip(folds, sorted_scores, strict=True))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without what :meth:`_predictions` prepares (it holds a closure)."""
        return {k: v for k, v in vars(self).items() if k != "_prepared"}

    # -- persistence: nested models saved as their own class + state -----------------------
    def _artifact_state(self) -> dict[str, Any]:
        return {
            "model": nested_model_state(self.model, "served"),
            "fold_models": [nested_model_state(m, f"fold{k}") for k, m in enumerate(self.fold_models)],
            "fold_of": self.fold_of,
            "scores": self.scores,
            "coverage": self.coverage,
            "method": self.method,
        }

    @classmethod
    def _from_artifact_state(cls, state: dict[str, Any]) -> AdaptedModel:
        try:
            return cls(
                nested_model(state["model"], ConformalModel),
                [nested_model(m, ConformalModel) for m in state["fold_models"]],
                state["fold_of"],
                state["scores"],
                state["coverage"],
                state["method"],
            )
        except (KeyError, TypeError) as error:
            raise MetamedValueError(f"its conformal state is incomplete ({error}).") from None


class ConformalSetModel(ConformalModel, BinaryModel):
    """Conformal prediction sets around a binary model (see :class:`ConformalModel`)."""

    outcome_type: ClassVar[Outcome] = BINARY
    model: BinaryModel

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    def predict_set(self, X: np.ndarray) -> np.ndarray:
        """Prediction sets for a binary outcome: (n, 2) bool, columns "holds 0", "holds 1"."""
        return self.predict_proba_and_set(X)[1]

    def predict_proba_and_set(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict_proba(X)`` and ``predict_set(X)`` from one pass over the models.

        The risks equal ``predict_proba``'s up to float32 rounding (see
        :meth:`AdaptedModel.joint`).
        """
        n = len(self.scores)
        risk, by_fold = self._predictions(X, "predict_proba")
        below = np.zeros((len(risk), 2), dtype=np.int64)
        for p, ordered in by_fold:
            # Score of label 0 is p, of label 1 is 1 - p; count calibration scores below.
            below[:, 0] += np.searchsorted(ordered, p, side="left")
            below[:, 1] += np.searchsorted(ordered, 1.0 - p, side="left")
        return risk, below <= _rank(self.coverage, n)


class ConformalIntervalModel(ConformalModel):
    """Conformal prediction intervals around a numeric model (see :class:`ConformalModel`)."""

    outcome_type: ClassVar[Outcome] = NUMERIC

    def predict_interval(self, X: np.ndarray, chunk_rows: int = 1000) -> np.ndarray:
        """Prediction intervals for a numeric outcome: (n, 2) float, lower and upper."""
        return self.predict_and_interval(X, chunk_rows)[1]

    def predict_and_interval(
        self, X: np.ndarray, chunk_rows: int = 1000
    ) -> tuple[np.ndarray, np.ndarray]:
        """``predict(X)`` and ``predict_interval(X)`` from one pass over the models.

        The predictions equal ``predict``'s up to float32 rounding (see
        :meth:`AdaptedModel.joint`).
        """
        n = len(self.scores)
        upper_k = _rank(self.coverage, n)  # 0-based order statistic of the upper end
        lower_k = n - 1 - upper_k  # the mirror one of the lower end
        served, by_fold = self._predictions(X, "predict")
        if not self.fold_models:
            q = np.sort(self.scores)[upper_k]
            return served, np.stack([served - q, served + q], axis=1)
        fold_mu = np.stack([mu for mu, _ in by_fold])  # (K, m)
        out = np.empty((fold_mu.shape[1], 2))
        for start in range(0, fold_mu.shape[1], chunk_rows):  # bounds memory at n x chunk
            mu = fold_mu[self.fold_of, start : start + chunk_rows]  # (n, chunk)
            low = mu - self.scores[:, None]
            high = mu + self.scores[:, None]
            out[start : start + chunk_rows, 0] = np.partition(low, lower_k, axis=0)[lower_k]
            out[start : start + chunk_rows, 1] = np.partition(high, upper_k, axis=0)[upper_k]
        return served, out
