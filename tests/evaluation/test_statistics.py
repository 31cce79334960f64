"""Bootstrap CIs, summaries, paired comparisons and verdict judgements on synthetic results.

The wording of verdicts is tested in ``tests/report/test_verdicts.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedValueError, UnknownNameError
from metamed.evaluation.statistics import (
    JUDGEMENTS,
    best_baseline,
    bootstrap_ci,
    paired_comparison,
    summarise,
    task_means,
    verdicts,
)


def make_results(
    offsets: dict[str, float],
    *,
    n_tasks: int = 8,
    n_draws: int = 3,
    ks: tuple[int, ...] = (5, 20),
    metric: str = "auroc",
    noise: float = 0.02,
    seed: int = 0,
    dataset: str = "sim",
) -> pd.DataFrame:
    """Tidy results where method m scores task_effect + offsets[m] + noise."""
    rng = np.random.default_rng(seed)
    task_effect = rng.normal(0.7, 0.05, n_tasks)
    rows = []
    for k in ks:
        for t in range(n_tasks):
            for d in range(n_draws):
                shared = rng.normal(0, noise)  # same episode -> shared difficulty
                for method, off in offsets.items():
                    value = task_effect[t] + off + shared + rng.normal(0, noise / 4)
                    rows.append((method, dataset, f"site{t}", k, d, metric, value))
    return pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    values = np.random.default_rng(1).normal(0.7, 0.1, 12)
    a = bootstrap_ci(values, n_boot=500, seed=3)
    b = bootstrap_ci(values, n_boot=500, seed=3)
    c = bootstrap_ci(values, n_boot=500, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.mean < a.high
    assert a.mean == pytest.approx(values.mean())
    assert a.n_tasks == 12
    # Width shrinks with a lower level.
    narrow = bootstrap_ci(values, n_boot=500, level=0.5, seed=3)
    assert narrow.high - narrow.low < a.high - a.low


def test_bootstrap_ci_mapping_nan_and_degenerate_inputs() -> None:
    ci = bootstrap_ci({"a": 0.6, "b": float("nan"), "c": 0.8}, n_boot=200, seed=0)
    assert ci.n_tasks == 2 and ci.mean == pytest.approx(0.7)
    one = bootstrap_ci([0.5], seed=0)
    assert one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.high)
    none = bootstrap_ci([float("nan")], seed=0)
    assert none.n_tasks == 0 and math.isnan(none.mean)
    with pytest.raises(MetamedValueError, match="level"):
        bootstrap_ci([0.1, 0.2], level=95)
    with pytest.raises(MetamedValueError, match="n_boot"):
        bootstrap_ci([0.1, 0.2], n_boot=0)


def test_summarise_averages_draws_within_task_first() -> None:
    # Task A has 3 draws (0.9 each), task B one finite draw (0.5) and one NaN draw:
    # mean over tasks is (0.9 + 0.5) / 2, not the mean over the 4 finite rows.
    rows = [("m", "d", "A", 5, i, "auroc", 0.9) for i in range(3)]
    rows += [("m", "d", "B", 5, 0, "auroc", 0.5), ("m", "d", "B", 5, 1, "auroc", float("nan"))]
    res = pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])
    summ = summarise(res, n_boot=200, seed=0)
    assert len(summ) == 1
    row = summ.iloc[0]
    assert row["mean"] == pytest.approx(0.7)
    assert row["n_tasks"] == 2 and row["n_draws"] == 3
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    tm = task_means(res)
    assert tm.set_index("task").loc["B", "n_draws"] == 1


def test_summarise_shape_and_determinism() -> None:
    res = make_results({"maml": 0.05, "pooled": 0.0})
    a = summarise(res, n_boot=300, seed=1)
    b = summarise(res, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 2 * 2  # methods x K (one metric, one dataset)
    assert set(a.columns) >= {"method", "k", "metric", "mean", "ci_low", "ci_high", "n_tasks"}
    assert (a["n_tasks"] == 8).all() and (a["n_draws"] == 3).all()
    means = a.set_index(["method", "k"])["mean"]
    assert means[("maml", 5)] > means[("pooled", 5)]


def test_paired_comparison_uniformly_better() -> None:
    res = make_results({"maml": 0.05, "pooled": 0.0}, n_tasks=10)
    cmp = paired_comparison(res, "maml", "pooled", "auroc", 5, n_boot=500, seed=0)
    assert cmp.mean_difference == pytest.approx(0.05, abs=0.01)
    assert 0 < cmp.ci_low < cmp.mean_difference < cmp.ci_high
    # 10 tasks all positive: exact two-sided Wilcoxon p = 2 / 2**10.
    assert cmp.p_value == pytest.approx(2 / 2**10)
    assert cmp.n_tasks == 10 and cmp.n_pairs == 30
    # Swapping arguments flips the sign, keeps p.
    rev = paired_comparison(res, "pooled", "maml", "auroc", 5, n_boot=500, seed=0)
    assert rev.mean_difference == pytest.approx(-cmp.mean_difference)
    assert rev.ci_high < 0
    assert rev.p_value == pytest.approx(cmp.p_value)
    # Episode-level test: 30 pairs, much smaller p (and documented as optimistic).
    ep = paired_comparison(res, "maml", "pooled", "auroc", 5, n_boot=200, test_unit="episode")
    assert ep.p_value < cmp.p_value


def test_paired_comparison_all_zero_differences_gives_p_one() -> None:
    res = make_results({"a": 0.0}, n_tasks=5)
    res_b = res.assign(method="b")
    both = pd.concat([res, res_b], ignore_index=True)
    cmp = paired_comparison(both, "a", "b", "auroc", 5, n_boot=100)
    assert cmp.p_value == 1.0
    assert cmp.mean_difference == 0.0
    assert cmp.ci_low == 0.0 and cmp.ci_high == 0.0


def test_paired_comparison_pairs_only_matching_finite_episodes() -> None:
    res = make_results({"a": 0.1, "b": 0.0}, n_tasks=4, n_draws=2, ks=(5,))
    # Drop one of b's episodes and make one of a's NaN: those two pairs disappear.
    res = res.drop(
        res[(res["method"] == "b") & (res["task"] == "site0") & (res["draw"] == 0)].index
    )
    mask = (res["method"] == "a") & (res["task"] == "site1") & (res["draw"] == 1)
    res.loc[mask, "value"] = np.nan
    cmp = paired_comparison(res, "a", "b", "auroc", 5, n_boot=100)
    assert cmp.n_pairs == 8 - 2
    assert cmp.n_tasks == 4


def test_paired_comparison_errors() -> None:
    res = make_results({"a": 0.0, "b": 0.0})
    with pytest.raises(UnknownNameError, match="Did you mean 'b'"):
        paired_comparison(res, "a", "bb", "auroc", 5)
    with pytest.raises(MetamedValueError, match="K values present"):
        paired_comparison(res, "a", "b", "auroc", 7)
    with pytest.raises(UnknownNameError, match="metric"):
        paired_comparison(res, "a", "b", "aucroc", 5)
    dup = pd.concat([res, res], ignore_index=True)
    with pytest.raises(MetamedValueError, match="several rows"):
        paired_comparison(dup, "a", "b", "auroc", 5)
    two = pd.concat([res, make_results({"a": 0.0, "b": 0.0}, dataset="other")], ignore_index=True)
    with pytest.raises(MetamedValueError, match="dataset="):
        paired_comparison(two, "a", "b", "auroc", 5)
    assert paired_comparison(two, "a", "b", "auroc", 5, dataset="other", n_boot=50).n_tasks == 8


def test_best_baseline_direction() -> None:
    res = make_results({"local": 0.0, "pooled": 0.04, "finetune": 0.02})
    assert best_baseline(res, ["local", "pooled", "finetune"], "auroc", 5) == "pooled"
    brier_res = make_results({"local": 0.0, "pooled": 0.04, "finetune": 0.02}, metric="brier")
    assert best_baseline(brier_res, ["local", "pooled", "finetune"], "brier", 5) == "local"
    # Missing names are ignored; no usable baseline raises.
    assert best_baseline(res, ["nope", "finetune"], "auroc", 5) == "finetune"
    with pytest.raises(MetamedValueError, match="None of the baselines"):
        best_baseline(res, ["nope"], "auroc", 5)
    slope = make_results({"a": 0.5, "b": 0.15}, metric="calibration_slope")  # ~1.2 vs ~0.85
    assert best_baseline(slope, ["a", "b"], "calibration_slope", 5) == "b"


def test_verdict_judgements_better_worse_and_no_difference() -> None:
    res = make_results({"maml": 0.05, "protonet": -0.05, "anil": 0.0, "pooled": 0.0, "local": -0.1})
    v = verdicts(res, ["maml", "protonet", "anil"], ["pooled", "local"], n_boot=500, seed=0)
    assert len(v) == 3 * 2
    assert (v["baseline"] == "pooled").all()
    by = v.set_index(["method", "k"])
    assert by.loc[("maml", 5), "judgement"] == "better"
    assert by.loc[("protonet", 5), "judgement"] == "worse"
    assert by.loc[("protonet", 5), "difference"] < 0 and by.loc[("protonet", 5), "n_tasks"] == 8
    assert by.loc[("anil", 20), "judgement"] == "no clear difference"
    assert by.loc[("anil", 20), "ci_low"] < 0 < by.loc[("anil", 20), "ci_high"]
    assert set(v["judgement"]) <= set(JUDGEMENTS)


def test_verdict_lower_is_better_metric_and_significance() -> None:
    # Brier: maml lower by 0.03 -> better although the difference is negative.
    res = make_results({"maml": -0.03, "pooled": 0.0}, metric="brier", n_tasks=12)
    v = verdicts(res, ["maml"], ["pooled"], metric="brier", n_boot=300)
    row = v.iloc[0]
    assert row["difference"] < 0 and row["judgement"] == "better"
    assert row["p_value"] < 0.05


def test_verdicts_four_sites_cannot_be_significant() -> None:
    res = make_results({"maml": 0.05, "pooled": 0.0}, n_tasks=4, ks=(10,))
    row = verdicts(res, ["maml"], ["pooled"], n_boot=300).iloc[0]
    assert row["p_value"] >= 0.125 - 1e-12
    # The CI excludes 0 but the test cannot be significant: only a weak verdict.
    assert row["ci_low"] > 0
    assert row["judgement"] == "leaning better"
    assert row["n_tasks"] == 4


def test_verdicts_skip_method_as_own_baseline_and_unknown_method() -> None:
    res = make_results({"maml": 0.05, "pooled": 0.0})
    v = verdicts(res, ["pooled"], ["pooled"], n_boot=50)
    assert v.empty
    with pytest.raises(UnknownNameError):
        verdicts(res, ["mammal"], ["pooled"])
