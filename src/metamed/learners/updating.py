"""Updating a prediction model at a new site: the clinical statistician's hierarchy.

A model developed at some hospitals is carried to a new one, which has K labelled
patients.  Clinical prediction modelling answers with a hierarchy of updates of the
original model's linear predictor ``lp(x) = w·x + c`` (Steyerberg, *Clinical Prediction
Models*, 2nd ed. 2019, ch. 20; Janssen, Moons, Kalkman, Grobbee & Vergouwe, J Clin
Epidemiol 2008;61:76-86), each a learner here:

- ``pooled-logreg`` (:class:`PooledLogistic`): the original model, not updated;
- ``recal-intercept`` (:class:`RecalibrateIntercept`), recalibration in the large:
  ``logit p = a + lp(x)``, the site's baseline risk;
- ``recal-logistic`` (:class:`LogisticRecalibration`): ``logit p = a + b·lp(x)``, the
  baseline risk and how strongly the predictors act at the site;
- ``model-revision`` (:class:`ModelRevision`): ``logit p = a + b·lp(x) + δ·x``, the
  recalibration plus a (penalised) re-estimate of every coefficient.

The original model is an L2 logistic regression on every training row pooled (ridge
regression of the standardised outcome for a numeric one, where every update is the same
on the linear scale: ``y = a + b·ŷ(x) + δ·x + ε``).

Estimation.  The textbook fits the updates by maximum likelihood.  With K of 5 to 20
patients that is often infinite: a support set of one class (which K random patients of
a low-prevalence site often are) sends ``a`` to -∞, a separable one sends ``b`` to +∞.
The updates are therefore maximum a posteriori under Gaussian priors centred on *no
update* (``a = 0``, ``b = 1``, ``δ = 0``) with precision ``penalty`` for ``a`` and ``b``
(default 0.1: a prior SD of 3.2 on the logit scale, weak enough that K = 20 patients
decide) and ``revision_penalty`` for ``δ`` (default 1, as the pooled model's own ridge
penalty); as both go to 0 the estimates become the maximum-likelihood ones.  Binary
updates are fitted by Newton's method (:func:`map_offset_fit`), numeric ones in closed
form, with the noise variance the pooled model's residual variance on the training rows.
The mixed model (:mod:`metamed.learners.mixed`) uses the same fit for its empirical-Bayes
intercept, with a prior learned from the training sites instead of a fixed one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression, Ridge

from metamed.learners._params import POSITIVE, POSITIVE_INT, SEED, hyperparameter, hyperparameters
from metamed.learners.base import AdaptedModel, BinaryModel, MetaLearner, register
from metamed.learners.baselines import pooled_rows
from metamed.outcomes import BINARY, NUMERIC, Outcome, TargetScaling
from metamed.tasks.task import Task

__all__ = [
    "MIN_SLOPE",
    "BinaryLinearModel",
    "LinearModel",
    "LogisticRecalibration",
    "ModelRevision",
    "NumericLinearModel",
    "PooledLogistic",
    "RecalibrateIntercept",
    "linear_model",
    "map_offset_fit",
]

#: Newton iterations of :func:`map_offset_fit`; the objective is strictly convex, so a
#: few suffice (the step is halved whenever it would not lower the objective).
MAX_NEWTON_STEPS = 50


def map_offset_fit(
    Z: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray,
    precision: np.ndarray,
    outcome: Outcome,
    noise_var: float = 1.0,
) -> np.ndarray:
    """The MAP coefficients ``θ`` of ``y ~ offset + Z θ`` under the prior ``θ ~ N(0, P⁻¹)``.

    Parameters
    ----------
    Z : ndarray of shape (n, m)
        Design of the update (a column of ones for the intercept, the linear predictor...).
    y : ndarray of shape (n,)
        Labels: 0/1 for a binary outcome (logistic likelihood), standardised values for a
        numeric one (Gaussian likelihood with variance ``noise_var``).
    offset : ndarray of shape (n,)
        The original model's linear predictor, kept fixed.
    precision : ndarray of shape (m,)
        Diagonal prior precision; every entry must be positive, so the estimate is finite
        whatever the labels (one class, separable).
    outcome : Outcome
        Which likelihood.
    noise_var : float, default 1.0
        Residual variance of a numeric outcome (unused for a binary one).

    Returns
    -------
    ndarray of shape (m,)
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    P = np.diag(np.asarray(precision, dtype=np.float64))
    if outcome is NUMERIC:  # Gaussian: ridge regression of the residual, in closed form
        return np.linalg.solve(Z.T @ Z + noise_var * P, Z.T @ (y - offset))

    def objective(theta: np.ndarray) -> float:
        eta = offset + Z @ theta
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * theta @ P @ theta)

    theta = np.zeros(Z.shape[1])
    value = objective(theta)
    for _ in range(MAX_NEWTON_STEPS):
        p = expit(offset + Z @ theta)
        gradient = Z.T @ (p - y) + P @ theta
        hessian = (Z * (p * (1 - p))[:, None]).T @ Z + P
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:
            candidate = theta - scale * step
            new = objective(candidate)
            if new <= value:
                break
            scale /= 2
        theta, done = candidate, value - new < 1e-12
        value = new
        if done:
            break
    return theta


# -- adapted models ----------------------------------------------------------------------------
class LinearModel(AdaptedModel):
    """A linear model ``coef·x + intercept`` (the logit, or the standardised value)."""

    def __init__(
        self,
        coef: np.ndarray,
        intercept: float,
        n_features: int,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ) -> None:
        self.coef = np.asarray(coef, dtype=np.float64).copy()
        self.intercept = float(intercept)
        self.n_features = n_features
        self.y_mean = y_mean
        self.y_std = y_std

    def linear_predictor(self, X: Any) -> np.ndarray:
        """``coef·x + intercept`` per row, shape (n,)."""
        return self._inputs(X).astype(np.float64) @ self.coef + self.intercept


class BinaryLinearModel(BinaryModel, LinearModel):
    """A logistic model: P(y = 1) = sigmoid(coef·x + intercept)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n,)."""
        return np.asarray(expit(self.linear_predictor(X)), dtype=np.float64)


class NumericLinearModel(LinearModel):
    """A linear model of a standardised numeric outcome."""

    outcome_type = NUMERIC

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values in the outcome's units, shape (n,)."""
        return np.asarray(
            TargetScaling(self.y_mean, self.y_std).inverse(self.linear_predictor(X)),
            dtype=np.float64,
        )


_LINEAR_MODELS: dict[Outcome, type[LinearModel]] = {
    BINARY: BinaryLinearModel,
    NUMERIC: NumericLinearModel,
}


def linear_model(
    outcome: Outcome, coef: np.ndarray, intercept: float, scaling: TargetScaling
) -> LinearModel:
    """The adapted linear model of ``outcome``."""
    return _LINEAR_MODELS[outcome](coef, intercept, len(coef), scaling.mean, scaling.std)


#: At or below this calibration slope an update keeps slope 1 and refits the rest (the
#: intercept only, for recalibration): a slope near zero or below says, from a few
#: patients, that the model's ranking is reversed or worthless at the site, which is noise
#: far more often than true, and serving it would reorder or flatten the patients.
MIN_SLOPE = 0.05


# -- the hierarchy -----------------------------------------------------------------------------
@register("pooled-logreg")
@hyperparameters
class PooledLogistic(MetaLearner):
    """An L2 logistic regression (ridge, numeric outcomes) on all training rows; no update.

    The original model of the updating hierarchy (see the module docstring); its
    subclasses update it at the new site.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 strength of the pooled fit (``alpha = 1 / C`` for ridge regression).
    penalty : float, default 0.1
        Prior precision of the intercept and slope updates (subclasses).
    revision_penalty : float, default 1.0
        Prior precision of the coefficient updates of model revision.
    max_iter : int, default 1000
        Solver iterations of the pooled logistic fit (lbfgs).
    random_state : int, default 0
        Kept for a uniform contract; every fit here is deterministic.
    """

    outcome_types = tuple(_LINEAR_MODELS)
    #: What the site may change: "intercept", "slope", "coefficients".
    updates: ClassVar[tuple[str, ...]] = ()

    C: float = hyperparameter(default=1.0, allowed=POSITIVE)
    penalty: float = hyperparameter(default=0.1, allowed=POSITIVE)
    revision_penalty: float = hyperparameter(default=1.0, allowed=POSITIVE)
    max_iter: int = hyperparameter(default=1000, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED)

    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> PooledLogistic:
        """Fit the pooled linear model on every row of ``train_tasks`` (``val_tasks`` unused)."""
        rows = pooled_rows(self, train_tasks, val_tasks)
        n_features, outcome, X, y = rows.n_features, rows.outcome, rows.X, rows.y
        scaling = outcome.fit_scaling(y)
        if outcome is BINARY:
            fit = LogisticRegression(C=self.C, max_iter=int(self.max_iter)).fit(X, y.astype(int))
            coef, intercept = fit.coef_[0], float(fit.intercept_[0])
            noise_var = 1.0
        else:
            z = scaling.transform(y.astype(np.float64))
            ridge = Ridge(alpha=1.0 / self.C).fit(X, z)
            coef, intercept = ridge.coef_, float(ridge.intercept_)
            noise_var = float(np.mean((z - ridge.predict(X)) ** 2))
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = intercept
        self.noise_var_ = noise_var
        self.n_features_ = n_features
        self.outcome_type_ = outcome
        self.y_mean_, self.y_std_ = scaling.mean, scaling.std
        return self

    @property
    def _scaling(self) -> TargetScaling:
        return TargetScaling(self.y_mean_, self.y_std_)

    def adapt(self, support: Task) -> LinearModel:
        """The pooled model updated on ``support`` as the class's ``updates`` allow."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        coef, intercept = self.coef_, self.intercept_
        if self.updates:
            X = support.X.astype(np.float64)
            y = self._scaling.transform(support.y.astype(np.float64))
            updates = self.updates
            b, theta = self._update(X, y, updates)
            if b <= MIN_SLOPE:
                # the slope would reverse or flatten the pooled model's ranking of the
                # site's patients: refit with it fixed at 1, keeping the other updates
                updates = tuple(u for u in updates if u != "slope")
                b, theta = self._update(X, y, updates)
            # a + b·(w·x + c) + δ·x  =  (b·w + δ)·x + (a + b·c)
            delta = theta[-X.shape[1] :] if "coefficients" in updates else 0.0
            coef, intercept = b * coef + delta, theta[0] + b * intercept
        return linear_model(self.outcome_type_, coef, intercept, self._scaling)

    def _update(
        self, X: np.ndarray, y: np.ndarray, updates: tuple[str, ...]
    ) -> tuple[float, np.ndarray]:
        """The calibration slope ``b`` and the MAP update ``θ`` (intercept first)."""
        lp = X @ self.coef_ + self.intercept_
        columns = [np.ones(len(y))]
        precision = [self.penalty]
        if "slope" in updates:
            columns.append(lp)
            precision.append(self.penalty)
        if "coefficients" in updates:
            columns += list(X.T)
            precision += [self.revision_penalty] * X.shape[1]
        theta = map_offset_fit(
            np.column_stack(columns), y, lp, np.asarray(precision), self.outcome_type_,
            self.noise_var_,
        )  # fmt: skip
        return (1.0 + float(theta[1]) if "slope" in updates else 1.0), theta


@register("recal-intercept")
@hyperparameters
class RecalibrateIntercept(PooledLogistic):
    """Recalibration in the large: the pooled model with the site's own intercept."""

    updates = ("intercept",)


@register("recal-logistic")
@hyperparameters
class LogisticRecalibration(PooledLogistic):
    """Logistic recalibration: the site's intercept and calibration slope on ``lp(x)``."""

    updates = ("intercept", "slope")


@register("model-revision")
@hyperparameters
class ModelRevision(PooledLogistic):
    """Model revision: logistic recalibration plus penalised updates of every coefficient."""

    updates = ("intercept", "slope", "coefficients")
