"""The guard's record from a decisions table: shares, the 'right choice' count, the signed
gains against always and never adapting, with intervals over held-out tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedValueError
from metamed.evaluation import guard_record


def _decisions(metric: str, rows: list[tuple[str, int, str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": "guard",
                "dataset": "d",
                "task": task,
                "k": 10,
                "draw": draw,
                "choice": choice,
                "weight": {"pooled": 0.0, "blend": 0.5, "adapted": 1.0}[choice],
                "reason": "cross-validated",
                "metric": metric,
                "served": served,
                "adapted": adapted,
                "pooled": pooled,
            }  # fmt: skip
            for task, draw, choice, served, adapted, pooled in rows
        ]
    )


def test_record_counts_right_choices_and_signs_gains_by_the_metric_direction() -> None:
    # Brier (lower is better): the guard picks the better one in 3 of 4 episodes.
    rows = [
        ("a", 0, "pooled", 0.10, 0.20, 0.10),  # right: pooled was better
        ("a", 1, "adapted", 0.05, 0.05, 0.15),  # right
        ("b", 0, "pooled", 0.30, 0.10, 0.30),  # wrong: adapting was better
        ("b", 1, "blend", 0.12, 0.12, 0.14),  # the blend matched the better one: right
    ]
    record = guard_record(_decisions("brier", rows)).iloc[0]
    assert record["n_episodes"] == 4 and record["n_tasks"] == 2
    assert record[["share_pooled", "share_blend", "share_adapted"]].tolist() == [0.5, 0.25, 0.25]
    assert record["share_right"] == 0.75
    # vs always adapting: task a gains (0.10 + 0) / 2 = 0.05, task b loses (-0.20 + 0) / 2
    assert record["saved_vs_adapted"] == pytest.approx((0.05 - 0.10) / 2)
    # vs never adapting: task a (0 + 0.10) / 2, task b (0 + 0.02) / 2
    assert record["saved_vs_pooled"] == pytest.approx((0.05 + 0.01) / 2)
    assert (
        record["saved_vs_pooled_low"] <= record["saved_vs_pooled"] <= record["saved_vs_pooled_high"]
    )
    # AUROC (higher is better): serving the higher AUROC is a gain
    auroc = guard_record(_decisions("auroc", [("a", 0, "adapted", 0.8, 0.8, 0.7)])).iloc[0]
    assert auroc["saved_vs_pooled"] == pytest.approx(0.1) and auroc["share_right"] == 1.0
    assert np.isnan(auroc["saved_vs_pooled_low"])  # one task: no interval


def test_undefined_metrics_are_left_out_and_a_wrong_table_is_refused() -> None:
    rows = [("a", 0, "pooled", np.nan, 0.6, np.nan), ("a", 1, "pooled", 0.7, 0.6, 0.7)]
    assert guard_record(_decisions("auroc", rows)).iloc[0]["n_episodes"] == 1
    with pytest.raises(MetamedValueError, match="decisions table lacks"):
        guard_record(pd.DataFrame({"method": ["guard"]}))


def test_the_goal_is_missed_only_where_a_gain_interval_lies_wholly_below_zero() -> None:
    """Never worse than the better of always and never adapting beyond its CI: 'worse'
    adapts at three sites where adapting always costs 0.05 Brier, 'even' serves the better
    of the two at every site, 'noisy' loses at one site and gains at another (its interval
    spans 0), and 'single' has one site (no interval: it cannot be judged)."""
    from metamed.evaluation import guard_breaches
    from metamed.report.suite_page import guard_verdicts

    worse = [(t, d, "adapted", 0.25, 0.25, 0.20) for t in "abc" for d in (0, 1)]
    even = [(t, d, "pooled", 0.20, 0.25, 0.20) for t in "abc" for d in (0, 1)]
    noisy = [("a", 0, "adapted", 0.30, 0.30, 0.20), ("b", 0, "adapted", 0.10, 0.10, 0.20),
             ("c", 0, "pooled", 0.20, 0.20, 0.20)]  # fmt: skip
    single = [("a", 0, "adapted", 0.25, 0.25, 0.20)]
    decisions = pd.concat(
        [_decisions("brier", rows).assign(method=name)
         for name, rows in (("worse", worse), ("even", even), ("noisy", noisy),
                            ("single", single))],
        ignore_index=True,
    )  # fmt: skip
    record = guard_record(decisions)
    breaches = guard_breaches(record)
    assert breaches[["method", "against"]].values.tolist() == [["worse", "pooled"]]
    assert breaches.iloc[0]["saved"] == pytest.approx(-0.05)
    assert breaches.iloc[0]["high"] < 0 and breaches.iloc[0]["n_tasks"] == 3
    verdicts = guard_verdicts(record)
    assert verdicts["worse"].startswith("misses it in 1 of 1")
    assert "K=10 Brier score -0.050 [-0.050, -0.050] vs never adapting" in verdicts["worse"]
    assert all(verdicts[m].startswith("meets it") for m in ("even", "noisy"))
    assert verdicts["single"].startswith("cannot be judged")
