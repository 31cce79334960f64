"""Glycaemic metrics on hand-built traces."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing.metrics import (
    METRIC_NAMES,
    bg_risk,
    glycaemic_metrics,
    metrics_frame,
    pad_to_horizon,
)
from metamed.errors import MetamedValueError


def test_risk_function_anchor_values() -> None:
    low, high = bg_risk(np.array([112.5, 600.0, 40.0, 20.0]))
    # f(BG) crosses zero near 112.5 mg/dL; the scale was built so that r(600) ~= 100
    assert low[0] + high[0] == pytest.approx(0.0, abs=1e-3)
    assert high[1] == pytest.approx(100.0, rel=0.01) and low[1] == 0.0
    assert low[2] == pytest.approx(36.4, rel=0.02) and high[2] == 0.0
    assert low[3] > low[2]


def test_time_in_ranges_on_hand_built_trace() -> None:
    # 10 samples: 2 below 54, 1 in [54, 70), 4 in range (70 and 180 inclusive), 1 in (180, 250], 2 above 250
    trace = np.array([[50, 53, 60, 70, 100, 150, 180, 200, 260, 300]], dtype=float)
    m = glycaemic_metrics(trace)
    assert m["tir_pct"][0] == pytest.approx(40.0)
    assert m["below_70_pct"][0] == pytest.approx(30.0)
    assert m["below_54_pct"][0] == pytest.approx(20.0)
    assert m["above_180_pct"][0] == pytest.approx(30.0)
    assert m["above_250_pct"][0] == pytest.approx(20.0)
    assert m["failure"][0] == 0.0
    low, high = bg_risk(trace)
    assert m["lbgi"][0] == pytest.approx(low.mean())
    assert m["risk_index"][0] == pytest.approx(low.mean() + high.mean())
    assert set(m) == set(METRIC_NAMES)


def test_early_failure_cannot_flatter_metrics() -> None:
    good_then_crash = np.full((1, 100), np.nan)
    good_then_crash[0, :20] = 120.0
    good_then_crash[0, 19] = 35.0  # terminal severe hypo
    survivor = np.full((1, 100), 120.0)
    survivor[0, ::2] = 250.0  # a poor but survivable day: 50 % in range
    traces = np.vstack([good_then_crash, survivor])
    m = glycaemic_metrics(traces)
    assert m["failure"].tolist() == [1.0, 0.0]
    # the crash is padded with 35 mg/dL: 81 % of the horizon below 54
    assert m["below_54_pct"][0] == pytest.approx(81.0)
    assert m["tir_pct"][0] == pytest.approx(19.0)
    assert m["tir_pct"][0] < m["tir_pct"][1]
    assert m["risk_index"][0] > m["risk_index"][1]


def test_shorter_trace_padded_to_horizon_and_failure_flag() -> None:
    padded, ended = pad_to_horizon(np.array([[100.0, 620.0]]), horizon_samples=5)
    assert padded.tolist() == [[100.0, 620.0, 620.0, 620.0, 620.0]]
    assert ended.tolist() == [True]
    m = glycaemic_metrics(np.array([[100.0, 620.0]]), horizon_samples=5)
    assert m["above_250_pct"][0] == pytest.approx(80.0)
    assert m["failure"][0] == 1.0
    # an explicit failure flag overrides the inference
    m2 = glycaemic_metrics(np.array([[100.0, 120.0]]), failed=np.array([True]))
    assert m2["failure"][0] == 1.0


def test_vectorised_matches_per_patient() -> None:
    rng = np.random.default_rng(0)
    traces = rng.uniform(45, 320, size=(7, 50))
    joint = glycaemic_metrics(traces)
    for i in range(7):
        single = glycaemic_metrics(traces[i : i + 1])
        for name in METRIC_NAMES:
            assert joint[name][i] == pytest.approx(single[name][0])


def test_bad_traces_raise() -> None:
    with pytest.raises(MetamedValueError, match="follows a NaN"):
        glycaemic_metrics(np.array([[100.0, np.nan, 120.0]]))
    with pytest.raises(MetamedValueError, match="no valid first"):
        glycaemic_metrics(np.array([[np.nan, 100.0]]))
    with pytest.raises(MetamedValueError, match="horizon_samples"):
        glycaemic_metrics(np.ones((1, 5)) * 100, horizon_samples=3)


def test_metrics_frame_columns() -> None:
    frame = metrics_frame(
        np.full((2, 4), 100.0), ["a", "b"], controller="pid", age_group=["adult", "child"]
    )
    assert frame["patient"].tolist() == ["a", "b"]
    assert frame["age_group"].tolist() == ["adult", "child"]
    assert (frame["tir_pct"] == 100.0).all()
