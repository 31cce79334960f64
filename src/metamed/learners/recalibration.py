"""Recalibration after adaptation: fitted on the support set alone, cross-validated in it.

An adapted model's risks can be well ranked but badly calibrated at the new site (a
pooled model carries the training sites' baseline risk; a fine-tuned one overshoots on
K patients).  :func:`recalibrate` fits logistic recalibration, ``logit p' = a + b·logit p``,
to *out-of-fold* predictions of the support set: the support is cut into folds, the
learner adapts to all but one fold and predicts that fold, so that no support patient's
prediction was fitted on its own label (recalibrating on in-sample predictions would
learn nothing about the query's calibration).  ``a`` and ``b`` are MAP estimates under
priors centred on no change (``a = 0``, ``b = 1``, precision ``penalty``), so a tiny or
one-class support set changes the model little; a slope estimate at or below
:data:`MIN_SLOPE` (a few noisy out-of-fold predictions saying the ranking is reversed)
falls back to recalibration in the large, so recalibration never reorders patients.  The
final model is the learner adapted to the whole support with that map applied
(:class:`RecalibratedModel`).

The protocol scores both (``ProtocolConfig(recalibrate=True)``: method ``m`` and
``m+recal`` on the same episodes), so ECE and calibration slope before and after are
read from the same results table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, logit

from metamed.errors import MetamedValueError
from metamed.learners.base import (
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    nested_model,
    nested_model_state,
)
from metamed.learners.updating import MIN_SLOPE, map_offset_fit
from metamed.outcomes import BINARY
from metamed.tasks.task import Task

__all__ = [
    "RECALIBRATED",
    "RecalibratedModel",
    "RecalibratingAdapter",
    "recalibrate",
    "support_folds",
]

#: Suffix of the method id of a recalibrated method in results tables.
RECALIBRATED = "+recal"
#: Probabilities are clipped this far from 0 and 1 before their logit is taken.
_EPS = 1e-6


class RecalibratedModel(BinaryModel):
    """An adapted binary model with its risks mapped by ``expit(a + b·logit p)``."""

    def __init__(self, model: BinaryModel, intercept: float, slope: float) -> None:
        self.model = model
        self.intercept = float(intercept)
        self.slope = float(slope)
        self.n_features = model.n_features

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Recalibrated P(y = 1) per row, shape (n,)."""
        z = logit(np.clip(self.model.predict_proba(X), _EPS, 1 - _EPS))
        return np.asarray(expit(self.intercept + self.slope * z), dtype=np.float64)

    # -- persistence: the model it maps, saved inside it -------------------------------------
    def _artifact_state(self) -> dict[str, Any]:
        return {
            "model": nested_model_state(self.model, "recal"),
            "intercept": self.intercept,
            "slope": self.slope,
        }

    @classmethod
    def _from_artifact_state(cls, state: dict[str, Any]) -> AdaptedModel:
        try:
            model = nested_model(state["model"], RecalibratedModel)
            if not isinstance(model, BinaryModel):
                raise TypeError(f"it maps a {type(model).__name__}, not a risk model")
            return cls(model, state["intercept"], state["slope"])
        except (KeyError, TypeError) as error:
            raise MetamedValueError(f"its recalibration state is incomplete ({error}).") from None


class RecalibratingAdapter:
    """``learner`` whose every adaptation is recalibrated on its own support set.

    What ``metamed adapt --recalibrate`` serves.  Conformal calibration
    (:func:`~metamed.learners.conformal.conformal_adapt`) wraps it unchanged, so each CV+
    fold model is recalibrated on its own rows only and the sets stay valid for the
    recalibrated risks.  Binary outcomes only (recalibration maps risks).
    """

    def __init__(
        self, learner: MetaLearner, random_state: int = 0, n_folds: int = 5, penalty: float = 1.0
    ) -> None:
        self.learner = learner
        self.random_state = int(random_state)
        self.n_folds = n_folds
        self.penalty = penalty

    def adapt(self, support: Task) -> RecalibratedModel:
        if support.outcome_type != BINARY:
            raise MetamedValueError(
                f"Recalibration maps risks of a binary outcome; this model predicts a "
                f"{support.outcome_type} one. Adapt without recalibration."
            )
        model = self.learner.adapt(support)
        assert isinstance(model, BinaryModel)
        # Seeded by the support's size too, so that folds differ between CV+ fold models.
        rng = np.random.default_rng([self.random_state, len(support)])
        return recalibrate(self.learner, support, model, rng, self.n_folds, self.penalty)


def support_folds(n: int, n_folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``min(n, n_folds)`` disjoint random folds of ``range(n)``."""
    return [np.sort(f) for f in np.array_split(rng.permutation(n), min(n, n_folds))]


def recalibrate(
    learner: MetaLearner,
    support: Task,
    model: BinaryModel,
    rng: np.random.Generator,
    n_folds: int = 5,
    penalty: float = 1.0,
) -> RecalibratedModel:
    """``model`` (``learner`` adapted to ``support``) recalibrated on out-of-fold predictions.

    Parameters
    ----------
    learner : MetaLearner
        The fitted learner; it adapts once per fold, to the support rows outside the fold.
    support : Task
        The support set (binary outcome); at least 2 rows, else ``model`` is kept as is.
    model : BinaryModel
        The learner adapted to the whole support set.
    rng : numpy.random.Generator
        Draws the folds.
    n_folds : int, default 5
        Folds (leave-one-out when the support has fewer rows).
    penalty : float, default 1.0
        Prior precision of ``a`` and ``b - 1``.
    """
    if support.outcome_type != BINARY or len(support) < 2:
        return RecalibratedModel(model, 0.0, 1.0)
    z = np.empty(len(support))
    for fold in support_folds(len(support), n_folds, rng):
        rest = np.setdiff1d(np.arange(len(support)), fold)
        fold_model = learner.adapt(support.subset(rest))
        z[fold] = logit(np.clip(BINARY.predict(fold_model, support.X[fold]), _EPS, 1 - _EPS))
    design = np.column_stack([np.ones(len(z)), z])
    a, b_minus_1 = map_offset_fit(design, support.y, z, np.array([penalty, penalty]), BINARY)
    if 1.0 + b_minus_1 <= MIN_SLOPE:
        # A slope at or below zero would reverse or flatten the adapted model's ranking of
        # patients on the word of a few noisy out-of-fold predictions; recalibrate in the
        # large instead (intercept only, slope 1), which keeps the ranking.
        (a,) = map_offset_fit(design[:, :1], support.y, z, np.array([penalty]), BINARY)
        return RecalibratedModel(model, a, 1.0)
    return RecalibratedModel(model, a, 1.0 + b_minus_1)
