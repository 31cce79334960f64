"""Metric correctness against independent computations and hand cases; the metric registry.

AUROC, AUPRC, Brier, RMSE, MAE and R² are checked against the definitions written out
here (pairwise comparison, step-wise precision sums, plain means), and the first three,
computed on checked arrays without scikit-learn's own validation, against scikit-learn's
functions to the last bit (results tables must not change); the hand-written metrics (ECE, calibration slope and intercept, net
benefit) against scikit-learn's logistic regression, direct loops and hand cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from metamed.errors import MetamedValueError, UnknownNameError
from metamed.evaluation import metrics as M


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _auroc_by_pairs(y: np.ndarray, p: np.ndarray) -> float:
    """P(case outranks control) over every case-control pair, ties counting one half."""
    cases, controls = p[y == 1], p[y == 0]
    wins = (cases[:, None] > controls[None, :]).sum() + 0.5 * (
        cases[:, None] == controls[None, :]
    ).sum()
    return float(wins / (len(cases) * len(controls)))


def _average_precision_by_thresholds(y: np.ndarray, p: np.ndarray) -> float:
    """sum over distinct thresholds t (high to low) of (recall gain) x precision at t."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(p.tolist()), reverse=True):
        flagged = p >= t
        recall = (flagged & (y == 1)).sum() / (y == 1).sum()
        total += (recall - prev_recall) * (flagged & (y == 1)).sum() / flagged.sum()
        prev_recall = recall
    return float(total)


@pytest.mark.parametrize("n", [4, 17, 300])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_auprc_brier_match_their_definitions_including_ties(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes present
    p = np.round(rng.random(n), 1)  # rounding creates ties, the tricky case for ranks
    assert M.auroc(y, p) == pytest.approx(_auroc_by_pairs(y, p), abs=1e-12)
    assert M.auprc(y, p) == pytest.approx(_average_precision_by_thresholds(y, p), abs=1e-12)
    assert M.brier(y, p) == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-12)


@pytest.mark.parametrize(
    "scores",
    ["continuous", "rounded", "few values", "saturated logits"],
)
def test_auroc_auprc_brier_equal_scikit_learns_exactly(scores: str) -> None:
    """Bit for bit, on many small query sets with and without ties: the protocol's results
    tables were computed with scikit-learn's functions and must stay the same numbers."""
    rng = np.random.default_rng(len(scores))
    for _ in range(300):
        n = int(rng.integers(2, 300))
        y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(float)
        y[rng.integers(n)], y[rng.integers(n)] = 0.0, 1.0
        if y.min() == y.max():
            y[0], y[1] = 0.0, 1.0
        if scores == "continuous":
            p = rng.random(n)
        elif scores == "rounded":
            p = np.round(rng.random(n), 1)
        elif scores == "few values":
            p = rng.choice([0.0, 1e-7, 0.5, 1.0], n)
        else:
            p = 1 / (1 + np.exp(-8 * rng.normal(size=n)))
        fpr, tpr, _ = skm.roc_curve(y, p)
        assert M.auroc(y, p) == skm.auc(fpr, tpr) == skm.roc_auc_score(y, p)
        assert M.auprc(y, p) == skm.average_precision_score(y, p)
        assert M.brier(y, p) == skm.brier_score_loss(y, p, pos_label=1)


def test_auroc_hand_case() -> None:
    # Pairs (case, control): (0.8,0.1) win, (0.8,0.4) win, (0.35,0.1) win, (0.35,0.4) loss -> 3/4.
    assert M.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # A tie between a case and a control counts one half.
    assert M.auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_auprc_hand_case() -> None:
    # Sorted by score: 1 (P=1, R=1/2), 0, 1 (P=2/3, R=1) -> AP = 0.5*1 + 0.5*2/3.
    assert M.auprc([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 1 / 3)


def test_ece_hand_case_and_bins() -> None:
    y = [0, 1, 1, 0]
    p = [0.05, 0.95, 0.55, 0.45]
    # Each point alone in its bin: (0.05 + 0.05 + 0.45 + 0.45) / 4.
    assert M.ece(y, p) == pytest.approx(0.25)
    # With one bin ECE is |mean(y) - mean(p)|.
    assert M.ece(y, p, n_bins=1) == pytest.approx(abs(0.5 - 0.5))
    # p = 1 falls in the last bin, not off the end.
    assert M.ece([1, 1], [1.0, 1.0]) == pytest.approx(0.0)
    # Perfectly calibrated within bins: bin [0.2, 0.3) holds p=0.25 with observed rate 1/4.
    assert M.ece([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0.0)


def test_ece_matches_direct_weighted_definition() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(1000)
    y = (rng.random(1000) < p**1.5).astype(int)
    edges = np.linspace(0, 1, 11)
    expected = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if inside.any():
            expected += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    assert M.ece(y, p) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.02  # miscalibrated by construction, so the test can fail


def test_calibration_slope_matches_unpenalised_sklearn() -> None:
    rng = np.random.default_rng(5)
    lp = rng.normal(0, 1.5, 2000)
    p = 1 / (1 + np.exp(-lp))
    # True outcome model: logit = 0.3 + 0.6 * lp -> predictions too extreme (slope < 1).
    y = (rng.random(2000) < 1 / (1 + np.exp(-(0.3 + 0.6 * lp)))).astype(int)
    slope, _ = M.calibration_slope_intercept(y, p)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    assert slope == pytest.approx(float(ref.coef_[0, 0]), abs=1e-5)
    assert 0.45 < slope < 0.75


def test_calibration_hand_cases_saturated_fit() -> None:
    # Two distinct predictions -> the slope model is saturated: it reproduces observed rates.
    p = np.array([0.2] * 10 + [0.6] * 10)
    y = np.array([1] * 3 + [0] * 7 + [1] * 8 + [0] * 2)  # observed 0.3 and 0.8
    slope, intercept = M.calibration_slope_intercept(y, p)
    expected_slope = (_logit(np.array(0.8)) - _logit(np.array(0.3))) / (
        _logit(np.array(0.6)) - _logit(np.array(0.2))
    )
    assert slope == pytest.approx(float(expected_slope), rel=1e-8)
    # Intercept (offset model) solves sum(y - sigmoid(a + logit p)) = 0.
    mu = 1 / (1 + np.exp(-(intercept + _logit(p))))
    assert float(np.sum(y - mu)) == pytest.approx(0.0, abs=1e-8)
    assert intercept > 0  # observed 11/20 vs mean predicted 0.4: risks under-estimated


def test_calibration_intercept_constant_prediction_closed_form() -> None:
    # All p = c: a = logit(mean y) - logit(c); the slope is undefined (no spread in logit p).
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    slope, intercept = M.calibration_slope_intercept(y, np.full(10, 0.5))
    assert math.isnan(slope)
    assert intercept == pytest.approx(math.log(0.3 / 0.7), rel=1e-9)


def test_perfectly_calibrated_model_has_slope_one_intercept_zero() -> None:
    rng = np.random.default_rng(11)
    p = rng.uniform(0.02, 0.98, 20_000)
    y = (rng.random(20_000) < p).astype(int)
    slope, intercept = M.calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1.0, abs=0.06)
    assert intercept == pytest.approx(0.0, abs=0.05)


def test_calibration_separation_and_extreme_probabilities() -> None:
    # logit(p) separates the classes perfectly: the slope MLE is infinite -> nan, no exception.
    slope, intercept = M.calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert math.isnan(slope)
    assert math.isfinite(intercept)
    # Exact 0/1 predictions are clipped before the logit, so the results stay finite.
    slope, intercept = M.calibration_slope_intercept([0, 1, 1, 0, 1], [0.0, 1.0, 0.0, 0.3, 0.7])
    assert math.isfinite(slope) and math.isfinite(intercept)


def test_net_benefit_hand_case() -> None:
    y = [1, 1, 0, 0, 0]
    p = [0.9, 0.3, 0.4, 0.1, 0.05]
    # t = 0.25: flagged 0.9, 0.3, 0.4 -> TP 2, FP 1; NB = 2/5 - 1/5 * (0.25/0.75).
    assert M.net_benefit(y, p, 0.25) == pytest.approx(0.4 - 0.2 / 3)
    # Nobody flagged -> treat-none benefit 0.
    assert M.net_benefit(y, p, 0.95) == pytest.approx(0.0)
    with pytest.raises(MetamedValueError, match="open interval"):
        M.net_benefit(y, p, 1.0)


def test_regression_metrics_match_their_definitions_and_constant_y_is_nan() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(120, 30, 50)
    pred = y + rng.normal(0, 10, 50)
    err = y - pred
    assert M.rmse(y, pred) == pytest.approx(math.sqrt(np.mean(err**2)), rel=1e-12)
    assert M.mae(y, pred) == pytest.approx(np.mean(np.abs(err)), rel=1e-12)
    r2 = 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)
    assert M.r2(y, pred) == pytest.approx(r2, rel=1e-12)
    assert math.isnan(M.r2([5.0, 5.0, 5.0], [5.0, 4.0, 6.0]))
    assert list(M.numeric_metrics(y, pred)) == ["rmse", "mae", "r2"]


def test_one_class_gives_nan_where_undefined_and_values_where_defined() -> None:
    out = M.binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], net_benefit_thresholds=[0.1])
    for name in ("auroc", "auprc", "calibration_slope", "calibration_intercept"):
        assert math.isnan(out[name]), name
    assert out["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    assert math.isfinite(out["ece"])
    assert out["net_benefit@0.1"] == pytest.approx(M.net_benefit([0, 0, 0], [0.1, 0.2, 0.3], 0.1))
    assert {m.name for m in M.metrics_for("binary")} <= out.keys()


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.5, -0.1], r"\[0, 1\]"),
        ([0, 1], [0.5, float("nan")], "NaN"),
        ([0, float("nan")], [0.5, 0.5], "NaN"),
        ([0, 1, 1], [0.5, 0.5], "same length"),
        ([], [], "empty"),
        ([0, 2], [0.5, 0.5], "0/1"),
        ([[0, 1], [1, 0]], [[0.5, 0.5], [0.5, 0.5]], "1-D"),
    ],
)
def test_invalid_input_raises(y: list, p: list, match: str) -> None:
    with pytest.raises(MetamedValueError, match=match):
        M.binary_metrics(y, p)


def test_invalid_numeric_input_and_bins_raise() -> None:
    with pytest.raises(MetamedValueError, match="same length"):
        M.rmse([1.0, 2.0], [1.0])
    with pytest.raises(MetamedValueError, match="NaN"):
        M.numeric_metrics([1.0, 2.0], [1.0, float("inf")])
    with pytest.raises(MetamedValueError, match="n_bins"):
        M.ece([0, 1], [0.2, 0.8], n_bins=0)
    # The error is also a ValueError for callers that do not know metamed.
    with pytest.raises(ValueError):
        M.auroc([0, 1], [0.2, 3.0])


# ----------------------------------------------------------------------------- registry


def test_registry_results_order_is_unchanged() -> None:
    # Results tables list metrics in registry order; a reordering would reorder every
    # results.csv written before.
    assert [m.name for m in M.metrics_for("binary")] == [
        "auroc", "auprc", "brier", "ece", "calibration_slope", "calibration_intercept",
    ]  # fmt: skip
    assert [m.name for m in M.metrics_for("numeric")] == ["rmse", "mae", "r2"]
    y, p = [0, 1, 1, 0, 1], [0.2, 0.7, 0.4, 0.3, 0.9]
    assert list(M.score("binary", y, p)) == [m.name for m in M.metrics_for("binary")]


def test_registry_entries_are_consistent() -> None:
    for name, metric in M.METRICS.items():
        assert metric.name == name
        assert metric.label and metric.kind in ("binary", "numeric")
        assert (metric.direction == "target") == (metric.target is not None)
    for kind in ("binary", "numeric"):
        assert M.primary_metric(kind).role == "primary"
        assert M.headline_metrics(kind)[0] is M.primary_metric(kind)
    assert M.get_metric("calibration_slope").target == 1.0
    assert M.get_metric("calibration_intercept").target == 0.0
    with pytest.raises(MetamedValueError, match="target"):
        M.Metric("x", "X", "binary", "target", M.auroc)
    with pytest.raises(MetamedValueError, match="direction"):
        M.Metric("x", "X", "binary", "sideways", M.auroc)  # type: ignore[arg-type]


def test_metric_directions_rank_values() -> None:
    auroc, brier, slope = (M.get_metric(n) for n in ("auroc", "brier", "calibration_slope"))
    assert auroc.is_better(0.8, 0.7) and not auroc.is_better(0.7, 0.8)
    assert brier.is_better(0.1, 0.2) and brier.direction_note == "lower is better"
    # Closer to the ideal slope 1 is better, from either side.
    assert slope.is_better(0.95, 0.8) and slope.is_better(1.05, 1.2) and slope.is_better(0.9, 1.2)
    assert slope.axis_label == "calibration slope (ideal 1)"
    assert auroc.axis_label == "AUROC"


def test_get_metric_names_thresholds_and_unknowns() -> None:
    nb = M.get_metric("net_benefit@0.2")
    y, p = [1, 0, 1, 0], [0.9, 0.3, 0.1, 0.05]
    assert nb(y, p) == pytest.approx(M.net_benefit(y, p, 0.2))
    assert nb.label == "net benefit at 0.2" and nb.direction == "higher"
    # A parametrised family is never computed by default.
    assert "net_benefit" not in {m.name for m in M.metrics_for("binary")}
    with pytest.raises(UnknownNameError, match="Did you mean 'brier'"):
        M.get_metric("brir")
    with pytest.raises(UnknownNameError, match="outcome kind"):
        M.metrics_for("survivl")


def test_outcome_kind_of_a_results_table() -> None:
    assert M.outcome_kind(["auroc", "brier", "net_benefit@0.1"]) == "binary"
    assert M.outcome_kind(["rmse"]) == "numeric"
    with pytest.raises(MetamedValueError, match="one outcome kind"):
        M.outcome_kind(["auroc", "rmse"])


def test_within_share_is_the_iwpc_share_of_doses_within_20_percent() -> None:
    y = np.array([35.0, 35.0, 35.0, 50.0])
    pred = np.array([42.0, 30.0, 27.0, 58.0])  # 7.0 is exactly 20 % of 35; 8 is more
    assert M.within_share(y, pred) == pytest.approx(0.75)
    assert M.get_metric("within@0.2")(y, pred) == pytest.approx(0.75)
    assert M.get_metric("within@0.1")(y, pred) == pytest.approx(0.0)
    assert "within" not in M.score("numeric", y, pred)  # asked for by name only
    with pytest.raises(MetamedValueError, match="positive outcomes"):
        M.within_share([0.0, 1.0], [0.0, 1.0])
