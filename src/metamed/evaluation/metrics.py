"""Scoring rules for one query set: discrimination, calibration, utility, regression error.

Every function takes the observed outcomes ``y`` and the model's predictions for the
same rows and returns one float.  Two kinds of trouble are kept apart:

* **Invalid input** (different lengths, empty arrays, NaN / inf, probabilities outside
  [0, 1], binary labels other than 0/1) is a caller bug and raises
  :class:`~metamed.errors.MetamedValueError`.
* **Undefined metric** (e.g. AUROC when the query set holds only one class) is a fact
  about the data, not a bug: the function returns ``nan`` so an evaluation run over
  hundreds of episodes records the gap instead of crashing.  Each docstring says when.

Probabilities are clipped to ``[EPS_PROB, 1 - EPS_PROB]`` before any logit is taken so
that a model that outputs exactly 0 or 1 still gets a finite calibration slope.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from metamed.errors import MetamedValueError

__all__ = [
    "EPS_PROB",
    "BINARY_METRICS",
    "NUMERIC_METRICS",
    "METRIC_LABELS",
    "LOWER_IS_BETTER",
    "TARGET_VALUE",
    "auroc",
    "auprc",
    "brier",
    "ece",
    "calibration_slope_intercept",
    "net_benefit",
    "rmse",
    "mae",
    "r2",
    "binary_metrics",
    "numeric_metrics",
]

# Probabilities are clipped this far from 0 and 1 before taking logits; 1e-6 keeps
# logit(p) within about +-13.8, finite yet far beyond any realistic clinical risk.
EPS_PROB: float = 1e-6

BINARY_METRICS: tuple[str, ...] = (
    "auroc",
    "auprc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)
NUMERIC_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")

# Human-readable names used by verdict sentences and report axes.
METRIC_LABELS: dict[str, str] = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "brier": "Brier score",
    "ece": "ECE",
    "calibration_slope": "calibration slope",
    "calibration_intercept": "calibration intercept",
    "net_benefit": "net benefit",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}

# Metrics where a smaller value is better; every other metric without a target value
# below is "higher is better".
LOWER_IS_BETTER: frozenset[str] = frozenset({"brier", "ece", "rmse", "mae"})

# Metrics whose ideal is a specific value rather than an extreme (a perfectly calibrated
# model has slope 1 and intercept 0; Van Calster et al. 2019, J Clin Epidemiol 74:167).
TARGET_VALUE: dict[str, float] = {"calibration_slope": 1.0, "calibration_intercept": 0.0}

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


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (needed for tied scores)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    run_ranks = np.repeat(avg, ends - starts)
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = run_ranks
    return ranks


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (probability a random case outranks a random control).

    Computed from the Mann-Whitney U statistic with tied scores counted as one half.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].

    Returns
    -------
    float
        AUROC in [0, 1]; ``nan`` when ``y`` holds only one class (undefined).
    """
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan")
    ranks = _average_ranks(p_arr)
    n_pos = float(y_arr.sum())
    n_neg = float(len(y_arr) - n_pos)
    u_stat = ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_stat / (n_pos * n_neg))


def auprc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds in decreasing
    order (step-wise, no interpolation), the definition scikit-learn also uses.  Its
    chance level is the outcome prevalence, not 0.5.

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
    order = np.argsort(-p_arr, kind="mergesort")
    p_sorted = p_arr[order]
    y_sorted = y_arr[order]
    # Last index of each run of tied scores: a threshold admits all ties at once.
    last_of_run = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    tp = np.cumsum(y_sorted)[last_of_run]
    n_flagged = last_of_run + 1.0
    precision = tp / n_flagged
    recall = tp / y_arr.sum()
    recall_step = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_step * precision))


# -------------------------------------------------------------------------- calibration


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score: mean squared difference between outcome and predicted probability.

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
    return float(np.mean((p_arr - y_arr) ** 2))


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width probability bins.

    ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over ``n_bins`` bins
    ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]`` (the last bin includes 1); empty bins
    contribute nothing.  This is the weighted, equal-width form of Naeini et al. 2015
    (AAAI) as used by Guo et al. 2017 (ICML).

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
    y_arr, p_arr = _check_binary(y, p)
    if _one_class(y_arr):
        return float("nan"), float("nan")
    lp = _logit(p_arr)
    intercept = _fit_intercept_with_offset(y_arr, lp)
    if np.ptp(lp) == 0.0:
        slope = float("nan")
    else:
        _, slope = _fit_logistic_1d(y_arr, lp)
    return slope, intercept


# ----------------------------------------------------------------------------- utility


def net_benefit(y: ArrayLike, p: ArrayLike, threshold: float) -> float:
    """Net benefit of treating patients whose predicted risk is at least ``threshold``.

    ``NB = TP/n - FP/n * threshold / (1 - threshold)`` (Vickers & Elkin 2006, Med Decis
    Making 26:565): true positives gained minus false positives weighted by the odds at
    the threshold, i.e. by how many false alarms one true case is worth.  Compare with
    "treat all" (``prevalence - (1 - prevalence) * t/(1-t)``) and "treat none" (0).

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
    """Root mean squared error, in the outcome's units.

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
    return float(np.sqrt(np.mean((y_arr - p_arr) ** 2)))


def mae(y: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error, in the outcome's units.

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
    return float(np.mean(np.abs(y_arr - p_arr)))


def r2(y: ArrayLike, pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` on the query set.

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
        returns 0 or 1 there; we do not invent a value).
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    ss_tot = float(np.sum((y_arr - y_arr.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    ss_res = float(np.sum((y_arr - p_arr) ** 2))
    return 1.0 - ss_res / ss_tot


# ------------------------------------------------------------------------------ bundles


def binary_metrics(
    y: ArrayLike,
    p: ArrayLike,
    *,
    n_bins: int = 10,
    net_benefit_thresholds: Sequence[float] = (),
) -> dict[str, float]:
    """All binary-outcome metrics for one query set, keyed by the names in ``BINARY_METRICS``.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed outcomes coded 0/1.
    p : array-like of shape (n,)
        Predicted probabilities of outcome 1, in [0, 1].
    n_bins : int, default 10
        Bins for :func:`ece`.
    net_benefit_thresholds : sequence of float, default ()
        Risk thresholds at which to add :func:`net_benefit`, keyed
        ``"net_benefit@{t:g}"`` (e.g. ``"net_benefit@0.1"``).

    Returns
    -------
    dict of str to float
        ``auroc, auprc, brier, ece, calibration_slope, calibration_intercept`` (plus any
        net-benefit keys); undefined entries are ``nan`` (see each function).
    """
    y_arr, p_arr = _check_binary(y, p)
    slope, intercept = calibration_slope_intercept(y_arr, p_arr)
    out = {
        "auroc": auroc(y_arr, p_arr),
        "auprc": auprc(y_arr, p_arr),
        "brier": brier(y_arr, p_arr),
        "ece": ece(y_arr, p_arr, n_bins=n_bins),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
    }
    for t in net_benefit_thresholds:
        out[f"net_benefit@{float(t):g}"] = net_benefit(y_arr, p_arr, t)
    return out


def numeric_metrics(y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """All numeric-outcome metrics for one query set, keyed by ``NUMERIC_METRICS``.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed numeric outcomes.
    pred : array-like of shape (n,)
        Predictions in the same units.

    Returns
    -------
    dict of str to float
        ``rmse, mae, r2``; ``r2`` is ``nan`` for a constant ``y``.
    """
    y_arr, p_arr = _check_pair(y, pred, "pred")
    return {"rmse": rmse(y_arr, p_arr), "mae": mae(y_arr, p_arr), "r2": r2(y_arr, p_arr)}
