"""Scoring rules for one query set, and the one registry that says what each metric means.

Every metric function takes the observed outcomes ``y`` and the model's predictions for
the same rows and returns one float.  Two kinds of trouble are kept apart:

* **Invalid input** (different lengths, empty arrays, NaN / inf, probabilities outside
  [0, 1], binary labels other than 0/1) is a caller bug and raises
  :class:`~metamed.errors.MetamedValueError`.
* **Undefined metric** (e.g. AUROC when the query set holds only one class) is a fact
  about the data, not a bug: the function returns ``nan`` so an evaluation run over
  hundreds of episodes records the gap instead of crashing.  Each docstring says when.

AUROC, AUPRC and the Brier score are scikit-learn's, computed here on the checked
arrays (the same floats, tested against scikit-learn); RMSE, MAE and R² are scikit-learn's.  ECE, the calibration
slope and intercept and net benefit are written here because scikit-learn has no
equivalent (each docstring says why); ``tests/evaluation/test_metrics.py`` checks all of
them against independent computations.

:data:`METRICS` is the registry: for each metric its name, label, outcome kind,
direction (higher / lower is better, or closest to a target value), role in reports and
function.  Statistics, reports, plots and the CLI read names, labels, directions and
targets from it and nowhere else; a new metric (or a new outcome kind: multi-label
assays, survival) is one more :class:`Metric` entry.

Probabilities are clipped to ``[EPS_PROB, 1 - EPS_PROB]`` before any logit is taken so
that a model that outputs exactly 0 or 1 still gets a finite calibration slope.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

import numpy as np
import sklearn
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from metamed.errors import MetamedValueError, unknown_name

__all__ = [
    "EPS_PROB",
    "Direction",
    "Role",
    "Metric",
    "METRICS",
    "get_metric",
    "metrics_for",
    "primary_metric",
    "headline_metrics",
    "outcome_kind",
    "score",
    "auroc",
    "auprc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
    "calibration_slope_intercept",
    "net_benefit",
    "rmse",
    "mae",
    "r2",
    "within_share",
    "IWPC_TOLERANCE",
    "binary_metrics",
    "numeric_metrics",
]

# Probabilities are clipped this far from 0 and 1 before taking logits; 1e-6 keeps
# logit(p) within about +-13.8, finite yet far beyond any realistic clinical risk.
EPS_PROB: float = 1e-6

# Newton iterations for the logistic recalibration fits; each is a 1- or 2-parameter
# concave problem that converges in < 10 steps when the MLE exists.
_MAX_NEWTON_ITER = 100
_NEWTON_TOL = 1e-10
# A |slope| beyond this means the recalibration MLE is running off to infinity
# (complete separation of y by logit(p)); the slope is then undefined.
_MAX_ABS_SLOPE = 1e3


# --------------------------------------------------------------------------- validation


def _as_1d_float(values: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MetamedValueError(
            f"{name} must be numeric; could not convert it to floats ({exc}). "
            f"Pass a 1-D array of numbers."
        ) from exc
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise MetamedValueError(
            f"{name} must be 1-D (one value per query row); received shape {arr.shape}. "
            f"Flatten it or pass one column."
        )
    return arr


def _check_pair(y: ArrayLike, pred: ArrayLike, pred_name: str) -> tuple[np.ndarray, np.ndarray]:
    y_arr = _as_1d_float(y, "y")
    p_arr = _as_1d_float(pred, pred_name)
    if y_arr.shape[0] != p_arr.shape[0]:
        raise MetamedValueError(
            f"y and {pred_name} must have the same length; received {y_arr.shape[0]} outcomes "
            f"and {p_arr.shape[0]} predictions. Score predictions for exactly the query rows."
        )
    if y_arr.shape[0] == 0:
        raise MetamedValueError(
            "Cannot score an empty query set: y and predictions have length 0. "
            "Check that the episode's query set is not empty."
        )
    for arr, name in ((y_arr, "y"), (p_arr, pred_name)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise MetamedValueError(
                f"{name} contains {int(bad.sum())} NaN/infinite value(s) (first at index "
                f"{int(np.argmax(bad))}); expected finite numbers. Impute or drop those rows "
                f"before scoring, or fix the model that produced them."
            )
    return y_arr, p_arr


def _check_binary(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = _check_pair(y, p, "p")
    not_binary = (y_arr != 0) & (y_arr != 1)
    if not_binary.any():
        shown = np.unique(y_arr[not_binary])[:5].tolist()
        raise MetamedValueError(
            f"y must hold binary outcomes coded 0/1; received other values {shown}. "
            f"Recode the outcome (e.g. y == positive_label) or use numeric_metrics for "
            f"continuous outcomes."
        )
    outside = (p_arr < 0) | (p_arr > 1)
    if outside.any():
        raise MetamedValueError(
            f"p must be probabilities in [0, 1]; {int(outside.sum())} value(s) fall outside "
            f"(range received: [{p_arr.min():.4g}, {p_arr.max():.4g}]). Pass "
            f"predict_proba output, not logits or scores."
        )
    return y_arr, p_arr


def _one_class(y: np.ndarray) -> bool:
    return bool(np.all(y == y[0]))


def _counts_at_thresholds(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives (float counts) at each distinct score, highest score first.

    The counts under scikit-learn's ROC and precision-recall curves, computed here on
    arrays already checked above: its own checks (label type inference, array
    validation) cost several times the arithmetic on query sets of a few hundred rows,
    and the protocol scores thousands of them.  Counts are whole numbers, exact in
    float64, so the curves built on them are scikit-learn's to the last bit.
    """
    order = np.argsort(p, kind="stable")[::-1]
    p_sorted = p[order]
    last_of_each = np.concatenate([np.nonzero(np.diff(p_sorted))[0], [p.shape[0] - 1]])
    tps = np.cumsum(y[order])[last_of_each]
    fps = 1.0 + last_of_each - tps
    return tps, fps


def _validated_by_us() -> sklearn.config_context:
    """Turn off scikit-learn's own argument checks for inputs this module has validated.

    The checks above already guarantee finite, 1-D, equal-length arrays (and 0/1 labels);
    repeating them costs more than the metric itself on query sets of a few hundred rows,
    and the protocol scores thousands of such sets.
    """
    return sklearn.config_context(skip_parameter_validation=True, assume_finite=True)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS_PROB, 1.0 - EPS_PROB)
    return np.log(q) - np.log1p(-q)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Two branches avoid overflow in exp for large |z|.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


# ----------------------------------------------------------------------- discrimination


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (probability a random case outranks a random control).

    scikit-learn's trapezoidal area under its ROC curve (:func:`~sklearn.metrics.auc`
    of :func:`~sklearn.metrics.roc_curve`), which is what
    :func:`~sklearn.metrics.roc_auc_score` computes for a binary outcome, without its
    label checks that cost twice the metric; tied scores count one half.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    float
        AUROC in [0, 1]; ``nan`` when ``y`` holds only one class (undefined; scikit-learn
        would raise).
    """
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan")
    tps, fps = _counts_at_thresholds(y_arr, p_arr)
    if fps.shape[0] > 2:
        # drop the thresholds collinear with their neighbours, as roc_curve does (they add
        # nothing to the area, but the sum must run over the same points to be the same)
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.concatenate([[True], corner, [True]])
        tps, fps = tps[keep], fps[keep]
    tpr = np.concatenate([[0.0], tps]) / tps[-1]
    fpr = np.concatenate([[0.0], fps]) / fps[-1]
    return float(np.trapezoid(tpr, fpr))


def auprc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision.

    scikit-learn's :func:`~sklearn.metrics.average_precision_score`:
    ``AP = sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds in decreasing
    order (step-wise, no interpolation).  Its chance level is the outcome prevalence,
    not 0.5.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    float
        Average precision in [0, 1]; ``nan`` when ``y`` holds only one class (with no
        positives recall is undefined; with no negatives AP is trivially 1 and says
        nothing about the model, so both cases are reported as undefined).
    """
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan")
    tps, fps = _counts_at_thresholds(y_arr, p_arr)
    # thresholds in increasing order, then the point (recall 0, precision 1)
    precision = np.concatenate([(tps / (tps + fps))[::-1], [1.0]])
    recall = np.concatenate([(tps / tps[-1])[::-1], [0.0]])
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


# -------------------------------------------------------------------------- calibration


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score: mean squared difference between outcome and predicted probability.

    scikit-learn's :func:`~sklearn.metrics.brier_score_loss` with outcome 1 positive.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    float
        Brier score in [0, 1], lower is better.  Defined even when ``y`` holds one class.
    """
    y_arr, p_arr = _check_binary(y, p)
    # scikit-learn sums the squared errors of both classes' columns and halves the mean;
    # the same operations in the same order give the same float
    both = ((1.0 - y_arr) - (1.0 - p_arr)) ** 2 + (y_arr - p_arr) ** 2
    return float(np.mean(both) * 0.5)


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width probability bins.

    ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over ``n_bins`` bins
    ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]`` (the last bin includes 1); empty bins
    contribute nothing.  This is the weighted, equal-width form of Naeini et al. 2015
    (AAAI) as used by Guo et al. 2017 (ICML).

    Hand-written because scikit-learn has no ECE:
    :func:`sklearn.calibration.calibration_curve` returns the rates of the non-empty
    bins but not their counts, which the weighted sum needs.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default 10
        Number of equal-width bins (>= 1).

    Returns
    -------
    float
        ECE in [0, 1], lower is better.  Defined even when ``y`` holds one class.
        Small query sets bias ECE upwards (few rows per bin), so compare methods on the
        same episodes rather than against an absolute threshold.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetamedValueError(
            f"n_bins must be a positive integer; received {n_bins!r}. Use e.g. n_bins=10."
        )
    y_arr, p_arr = _check_binary(y, p)
    bin_idx = np.minimum((p_arr * n_bins).astype(int), n_bins - 1)
    sum_y = np.bincount(bin_idx, weights=y_arr, minlength=n_bins)
    sum_p = np.bincount(bin_idx, weights=p_arr, minlength=n_bins)
    # |sum_y - sum_p| / n equals (n_b / n) * |mean_y - mean_p| and needs no division by n_b.
    return float(np.sum(np.abs(sum_y - sum_p)) / len(y_arr))


def _fit_intercept_with_offset(y: np.ndarray, offset: np.ndarray) -> float:
    """MLE of ``a`` in ``logit P(y=1) = a + offset`` by damped Newton (concave in ``a``)."""
    a = 0.0  # "already calibrated in the large" is the natural starting point
    ll = _log_lik(y, a + offset)
    for _ in range(_MAX_NEWTON_ITER):
        mu = _sigmoid(a + offset)
        grad = float(np.sum(y - mu))
        hess = float(np.sum(mu * (1.0 - mu)))
        if hess <= 0.0:
            return float("nan")
        step = grad / hess
        # Step halving: with tiny curvature a full Newton step can overshoot.
        t = 1.0
        while True:
            cand = a + t * step
            cand_ll = _log_lik(y, cand + offset)
            if cand_ll >= ll - 1e-12 or t < 1e-8:
                break
            t *= 0.5
        a, ll = cand, cand_ll
        if abs(t * step) < _NEWTON_TOL:
            return float(a)
    return float(a) if np.isfinite(a) else float("nan")


def _log_lik(y: np.ndarray, eta: np.ndarray) -> float:
    # log L = sum y*eta - log(1 + exp(eta)), written stably.
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _fit_logistic_1d(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Unpenalised MLE of ``(b0, b1)`` in ``logit P(y=1) = b0 + b1 x``; nan when it does not exist."""
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    # Start the intercept at the observed log-odds so the first step is small.
    prev = float(np.clip(y.mean(), EPS_PROB, 1 - EPS_PROB))
    beta[0] = np.log(prev / (1 - prev))
    ll = _log_lik(y, design @ beta)
    for _ in range(_MAX_NEWTON_ITER):
        mu = _sigmoid(design @ beta)
        w = mu * (1.0 - mu)
        grad = design.T @ (y - mu)
        hess = (design * w[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return float("nan"), float("nan")
        if not np.all(np.isfinite(step)):
            return float("nan"), float("nan")
        # Step halving keeps the log-likelihood non-decreasing (plain Newton can overshoot).
        t = 1.0
        while True:
            cand = beta + t * step
            cand_ll = _log_lik(y, design @ cand)
            if cand_ll >= ll - 1e-12 or t < 1e-8:
                break
            t *= 0.5
        beta, ll = cand, cand_ll
        if abs(beta[1]) > _MAX_ABS_SLOPE:
            return float("nan"), float("nan")
        if np.max(np.abs(t * step)) < _NEWTON_TOL:
            return float(beta[0]), float(beta[1])
    # No convergence within the budget: the MLE is (numerically) at infinity.
    return float("nan"), float("nan")


def calibration_slope_intercept(y: ArrayLike, p: ArrayLike) -> tuple[float, float]:
    """Calibration slope and calibration-in-the-large by logistic recalibration.

    Definitions follow Van Calster et al. 2019 (BMC Medicine 17:230, "Calibration: the
    Achilles heel of predictive analytics") and Steyerberg 2019 (Clinical Prediction
    Models, 2nd ed., ch. 15), with ``L = logit(p)``:

    * **slope** ``b1`` from the unpenalised logistic regression
      ``logit P(y=1) = b0 + b1 * L``.  Ideal 1; ``< 1`` means predictions are too
      extreme (typical of overfitting), ``> 1`` too moderate.
    * **intercept** ``a`` from ``logit P(y=1) = a + 1 * L`` (``L`` as an offset, slope
      fixed at 1): calibration-in-the-large.  Ideal 0; ``< 0`` means risks are
      over-estimated on average, ``> 0`` under-estimated.  This is *not* ``b0`` of the
      slope model, which depends on the slope and is hard to interpret.

    ``p`` is clipped to ``[EPS_PROB, 1 - EPS_PROB]`` before the logit.

    Hand-written (damped Newton) rather than fitted with scikit-learn: the fit must
    detect complete separation, where the slope's maximum-likelihood estimate does not
    exist, and report ``nan``; :class:`~sklearn.linear_model.LogisticRegression` with
    ``C=inf`` instead stops at an arbitrary large slope (with a convergence warning),
    and it takes no offset term for the intercept model.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    slope, intercept : tuple of float
        Both ``nan`` when ``y`` holds one class (the maximum-likelihood estimates are
        infinite).  The slope alone is ``nan`` when all predictions are equal (no
        variation in ``L``) or when ``L`` separates the classes perfectly (the slope's
        MLE does not exist).
    """
    return calibration_slope(y, p), calibration_intercept(y, p)


def calibration_slope(y: ArrayLike, p: ArrayLike) -> float:
    """Calibration slope alone (ideal 1); see :func:`calibration_slope_intercept`."""
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan")
    lp = _logit(p_arr)
    if np.ptp(lp) == 0.0:
        return float("nan")
    return _fit_logistic_1d(y_arr, lp)[1]


def calibration_intercept(y: ArrayLike, p: ArrayLike) -> float:
    """Calibration-in-the-large alone (ideal 0); see :func:`calibration_slope_intercept`."""
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan")
    return _fit_intercept_with_offset(y_arr, _logit(p_arr))


# ----------------------------------------------------------------------------- utility


def net_benefit(y: ArrayLike, p: ArrayLike, threshold: float) -> float:
    """Net benefit of treating patients whose predicted risk is at least ``threshold``.

    ``NB = TP/n - FP/n * threshold / (1 - threshold)`` (Vickers & Elkin 2006, Med Decis
    Making 26:565): true positives gained minus false positives weighted by the odds at
    the threshold, i.e. by how many false alarms one true case is worth.  Compare with
    "treat all" (``prevalence - (1 - prevalence) * t/(1-t)``) and "treat none" (0).

    Hand-written because scikit-learn has no decision-curve metric (its confusion-matrix
    helpers give TP and FP but not the threshold-odds weighting).

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    threshold : float
        Risk threshold in the open interval (0, 1).

    Returns
    -------
    float
        Net benefit in units of true positives per patient.  Defined for one class.
    """
    if not isinstance(threshold, (int, float, np.floating)) or not 0.0 < float(threshold) < 1.0:
        raise MetamedValueError(
            f"threshold must be a risk in the open interval (0, 1); received {threshold!r}. "
            f"Use e.g. threshold=0.1 for 'treat when risk >= 10%'."
        )
    y_arr, p_arr = _check_binary(y, p)
    t = float(threshold)
    flagged = p_arr >= t
    n = len(y_arr)
    tp = float(np.sum(flagged & (y_arr == 1)))
    fp = float(np.sum(flagged & (y_arr == 0)))
    return tp / n - fp / n * (t / (1.0 - t))


# -------------------------------------------------------------------------- regression


def rmse(y: ArrayLike, pred: ArrayLike) -> float:
    """Root mean squared error, in the outcome's units (scikit-learn's).

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed numeric outcomes.
    pred : array-like of shape (n,)
        Predictions in the same units.

    Returns
    -------
    float
        RMSE >= 0, lower is better.
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    with _validated_by_us():
        return float(skm.root_mean_squared_error(y_arr, p_arr))


def mae(y: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error, in the outcome's units (scikit-learn's).

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed numeric outcomes.
    pred : array-like of shape (n,)
        Predictions in the same units.

    Returns
    -------
    float
        MAE >= 0, lower is better.
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    with _validated_by_us():
        return float(skm.mean_absolute_error(y_arr, p_arr))


def r2(y: ArrayLike, pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` on the query set (scikit-learn's).

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed numeric outcomes.
    pred : array-like of shape (n,)
        Predictions in the same units.

    Returns
    -------
    float
        R² (at most 1, can be negative: worse than predicting the query mean).  ``nan``
        when ``y`` is constant, where ``SS_tot = 0`` and R² is undefined (scikit-learn
        returns 0 or 1 there by default; we do not invent a value).
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    if np.ptp(y_arr) == 0.0:
        return float("nan")
    with _validated_by_us():
        return float(skm.r2_score(y_arr, p_arr))


#: The IWPC's accuracy convention for warfarin dosing: a predicted dose within 20 % of
#: the stable dose (IWPC, N Engl J Med 2009;360:753-64).
IWPC_TOLERANCE = 0.2


def within_share(y: ArrayLike, pred: ArrayLike, tolerance: float = IWPC_TOLERANCE) -> float:
    """Share of rows whose prediction lies within ``tolerance`` of the observed value.

    A row counts when ``|pred - y| <= tolerance * y``: the IWPC's "percentage of patients
    whose predicted dose is within 20 % of the actual dose" at ``tolerance = 0.2``.
    Written here because scikit-learn has no relative-tolerance hit rate.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed values; must be positive (a relative error needs them).
    pred : array-like of shape (n,)
        Predictions in the same units.
    tolerance : float, default 0.2
        Allowed relative error, positive.

    Returns
    -------
    float
        Share in [0, 1], higher is better.
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    if not tolerance > 0:
        raise MetamedValueError(f"tolerance must be positive, got {tolerance}.")
    if (y_arr <= 0).any():
        raise MetamedValueError(
            f"within_share needs positive outcomes (a relative error); y holds "
            f"{int((y_arr <= 0).sum())} value(s) <= 0. Use MAE or RMSE for this outcome."
        )
    return float(np.mean(np.abs(p_arr - y_arr) <= tolerance * y_arr))


# ----------------------------------------------------------------------------- registry

#: ``"higher"`` / ``"lower"`` is better, or ``"target"``: closest to :attr:`Metric.target`.
Direction = Literal["higher", "lower", "target"]
#: What a report does with a metric: ``"primary"`` ranks methods for its outcome kind
#: (summary table, K-shot curve, verdicts, per-task table); ``"headline"`` also gets a
#: summary table and verdicts; ``"secondary"`` is plotted in the small K-shot panels (as
#: are headline metrics); ``"recalibration"`` metrics share a panel with their ideal lines.
Role = Literal["primary", "headline", "secondary", "recalibration"]

_DIRECTIONS = ("higher", "lower", "target")
_ROLES = ("primary", "headline", "secondary", "recalibration")


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, what it applies to, which way is better, how to compute it.

    Attributes
    ----------
    name : str
        Key in the tidy results table (``results["metric"]``).
    label : str
        Human-readable name for tables, axes and verdict sentences.
    kind : str
        Outcome kind it scores: ``"binary"`` or ``"numeric"`` today; multi-label assays
        and survival outcomes add their own kinds (``fn`` then takes their ``y``).
    direction : {"higher", "lower", "target"}
        Which values are better; ``"target"`` means closest to ``target``.
    fn : callable
        ``fn(y, pred) -> float`` on one query set (``nan`` where undefined).
    target : float or None
        The ideal value, for ``direction="target"`` only (calibration slope 1).
    role : {"primary", "headline", "secondary", "recalibration"}
        How reports use it (see :data:`Role`).
    parameter : str or None
        For a metric family with a parameter (net benefit's ``threshold``): results name
        each member ``"<name>@<value>"`` and :func:`get_metric` builds it; the family is
        never computed by default.
    """

    name: str
    label: str
    kind: str
    direction: Direction
    fn: Callable[..., float]
    target: float | None = None
    role: Role = "secondary"
    parameter: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise MetamedValueError(
                f"Metric '{self.name}': direction must be one of {_DIRECTIONS}; "
                f"received {self.direction!r}."
            )
        if (self.direction == "target") != (self.target is not None):
            raise MetamedValueError(
                f"Metric '{self.name}': give a target value exactly when direction is "
                f"'target'; received direction={self.direction!r}, target={self.target!r}."
            )
        if self.role not in _ROLES:
            raise MetamedValueError(
                f"Metric '{self.name}': role must be one of {_ROLES}; received {self.role!r}."
            )

    def __call__(self, y: ArrayLike, pred: ArrayLike) -> float:
        return self.fn(y, pred)

    def loss(self, value: float) -> float:
        """``value`` turned so that smaller is better (distance to the target for targets)."""
        if self.direction == "target":
            return abs(value - float(self.target))  # type: ignore[arg-type]
        return value if self.direction == "lower" else -value

    def is_better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than value ``b``."""
        return self.loss(a) < self.loss(b)

    @property
    def direction_note(self) -> str:
        """``"lower is better"``, ``"ideal 1"``, or ``""`` for the usual higher-is-better."""
        if self.direction == "lower":
            return "lower is better"
        if self.direction == "target":
            return f"ideal {self.target:g}"
        return ""

    @property
    def axis_label(self) -> str:
        """Label with its direction note, e.g. ``"Brier score (lower is better)"``."""
        note = self.direction_note
        return f"{self.label} ({note})" if note else self.label


def _registry(*metrics: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({m.name: m for m in metrics})


#: Every metric metamed knows, in the order results tables list them.
METRICS: Mapping[str, Metric] = _registry(
    Metric("auroc", "AUROC", "binary", "higher", auroc, role="primary"),
    Metric("auprc", "AUPRC", "binary", "higher", auprc),
    Metric("brier", "Brier score", "binary", "lower", brier, role="headline"),
    Metric("ece", "ECE", "binary", "lower", ece),
    # A perfectly calibrated model has slope 1 and intercept 0 (Van Calster et al. 2019,
    # J Clin Epidemiol 74:167).
    Metric(
        "calibration_slope", "calibration slope", "binary", "target", calibration_slope,
        target=1.0, role="recalibration",
    ),
    Metric(
        "calibration_intercept", "calibration intercept", "binary", "target",
        calibration_intercept, target=0.0, role="recalibration",
    ),
    Metric("net_benefit", "net benefit", "binary", "higher", net_benefit, parameter="threshold"),
    Metric("rmse", "RMSE", "numeric", "lower", rmse, role="primary"),
    Metric("mae", "MAE", "numeric", "lower", mae),
    Metric("r2", "R²", "numeric", "higher", r2, role="headline"),
    # within@0.2: the IWPC's share of doses within 20 % (asked for by name, never default)
    Metric("within", "share within", "numeric", "higher", within_share, parameter="tolerance"),
)  # fmt: skip


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``; ``"net_benefit@0.1"`` is net benefit at 0.1.

    Raises
    ------
    UnknownNameError
        For a name the registry does not hold, with a "did you mean" suggestion.
    """
    metric = METRICS.get(str(name))
    if metric is not None:
        return metric
    base, _, value = str(name).partition("@")
    family = METRICS.get(base)
    if family is not None and family.parameter is not None:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return replace(
                family,
                name=str(name),
                label=f"{family.label} at {number:g}",
                fn=functools.partial(family.fn, **{family.parameter: number}),
                parameter=None,
            )
    known = [
        m.name if m.parameter is None else f"{m.name}@<{m.parameter}>" for m in METRICS.values()
    ]
    raise unknown_name("metric", str(name), known)


def metrics_for(kind: str, roles: Iterable[Role] | None = None) -> tuple[Metric, ...]:
    """Metrics of outcome ``kind`` in registry order, without parametrised families.

    Parameters
    ----------
    kind : str
        Outcome kind, e.g. ``"binary"``.
    roles : iterable of Role, optional
        Keep only these roles (default: all).

    Raises
    ------
    UnknownNameError
        When no registered metric scores ``kind``.
    """
    kinds = list(dict.fromkeys(m.kind for m in METRICS.values()))
    if kind not in kinds:
        raise unknown_name("outcome kind", str(kind), kinds)
    wanted = set(roles) if roles is not None else set(_ROLES)
    return tuple(
        m for m in METRICS.values() if m.kind == kind and m.role in wanted and m.parameter is None
    )


def primary_metric(kind: str) -> Metric:
    """The metric that ranks methods for outcome ``kind`` (AUROC, RMSE)."""
    return metrics_for(kind, roles=("primary",))[0]


def headline_metrics(kind: str) -> tuple[Metric, ...]:
    """Primary then headline metrics of ``kind``: the ones summaries and verdicts show."""
    return (primary_metric(kind), *metrics_for(kind, roles=("headline",)))


def outcome_kind(metric_names: Iterable[str]) -> str:
    """The one outcome kind of the registered metrics named in a results table.

    Raises
    ------
    MetamedValueError
        When the names mix outcome kinds (results of different outcomes in one table)
        or none of them is a registered metric.
    """
    names = sorted({str(n) for n in metric_names})
    kinds = sorted({get_metric(n).kind for n in names})
    if len(kinds) != 1:
        raise MetamedValueError(
            f"results must hold the metrics of one outcome kind; metrics {names} belong to "
            f"kinds {kinds or 'none'}. Report each outcome separately."
        )
    return kinds[0]


def score(
    kind: str,
    y: ArrayLike,
    pred: ArrayLike,
    *,
    net_benefit_thresholds: Sequence[float] = (),
) -> dict[str, float]:
    """Every default metric of outcome ``kind`` on one query set, keyed by metric name.

    Parameters
    ----------
    kind : str
        Outcome kind (``"binary"``: ``pred`` are probabilities; ``"numeric"``).
    y, pred : array-like of shape (n,)
        Observed outcomes and predictions for the same rows.
    net_benefit_thresholds : sequence of float, default ()
        Binary only: risk thresholds at which to add :func:`net_benefit`, keyed
        ``"net_benefit@{t:g}"`` (e.g. ``"net_benefit@0.1"``).

    Returns
    -------
    dict of str to float
        Undefined entries are ``nan`` (see each function).
    """
    chosen = [*metrics_for(kind)]
    chosen += [get_metric(f"net_benefit@{float(t):g}") for t in net_benefit_thresholds]
    # Each metric validates its inputs: the first one reports a bad input in one message.
    return {m.name: m(y, pred) for m in chosen}


def binary_metrics(
    y: ArrayLike,
    p: ArrayLike,
    *,
    n_bins: int = 10,
    net_benefit_thresholds: Sequence[float] = (),
) -> dict[str, float]:
    """All default binary-outcome metrics for one query set (:func:`score` for ``"binary"``).

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default 10
        Bins for :func:`ece`.
    net_benefit_thresholds : sequence of float, default ()
        Risk thresholds at which to add :func:`net_benefit`, keyed ``"net_benefit@{t:g}"``.

    Returns
    -------
    dict of str to float
        ``auroc, auprc, brier, ece, calibration_slope, calibration_intercept`` (plus any
        net-benefit keys); undefined entries are ``nan`` (see each function).
    """
    out = score("binary", y, p, net_benefit_thresholds=net_benefit_thresholds)
    if n_bins != 10:
        out["ece"] = ece(y, p, n_bins=n_bins)
    return out


def numeric_metrics(y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """All numeric-outcome metrics for one query set (:func:`score` for ``"numeric"``).

    Returns
    -------
    dict of str to float
        ``rmse, mae, r2``; ``r2`` is ``nan`` for a constant ``y``.
    """
    return score("numeric", y, pred)
