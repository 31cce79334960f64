"""The shared bootstrap: each interval's resamples depend on its cell alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedValueError
from metamed.evaluation.bootstrap import bootstrap_ci, cell_rng
from metamed.evaluation.statistics import paired_comparison, summarise, verdicts


def _results(seed: int = 0) -> pd.DataFrame:
    """Six tasks, three methods, two K, two metrics, three draws: enough cells to mix up."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in range(6):
        level = rng.normal(0.75, 0.05)
        for k in (5, 20):
            for draw in range(3):
                for method, shift in (("maml", 0.02), ("pooled", 0.0), ("local", -0.04)):
                    auroc = level + shift + rng.normal(0, 0.02)
                    rows.append((method, "toy", f"t{task}", k, draw, "auroc", auroc))
                    rows.append((method, "toy", f"t{task}", k, draw, "brier", 0.4 - auroc / 3))
    return pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])


def test_cell_rng_depends_on_seed_and_identity_only() -> None:
    a = cell_rng(0, "summary", "toy", "maml", 5, "auroc").integers(0, 1 << 30, 8)
    again = cell_rng(0, "summary", "toy", "maml", np.int64(5), "auroc").integers(0, 1 << 30, 8)
    other_k = cell_rng(0, "summary", "toy", "maml", 20, "auroc").integers(0, 1 << 30, 8)
    other_seed = cell_rng(1, "summary", "toy", "maml", 5, "auroc").integers(0, 1 << 30, 8)
    np.testing.assert_array_equal(a, again)  # numpy and Python integers name the same cell
    assert not np.array_equal(a, other_k) and not np.array_equal(a, other_seed)
    np.testing.assert_array_equal(
        cell_rng(7).integers(0, 100, 5), np.random.default_rng(7).integers(0, 100, 5)
    )
    with pytest.raises(MetamedValueError, match="seed"):
        cell_rng(-1, "x")


def test_distinct_cells_get_distinct_resamples() -> None:
    values = np.linspace(0.6, 0.9, 6)
    first = bootstrap_ci(values, n_boot=400, cell=("summary", "toy", "a", 5, "auroc"))
    second = bootstrap_ci(values, n_boot=400, cell=("summary", "toy", "b", 5, "auroc"))
    assert first.mean == second.mean
    assert (first.low, first.high) != (second.low, second.high)


def test_summary_interval_alone_equals_it_among_others() -> None:
    results = _results()
    among = summarise(results, n_boot=500, seed=3)
    one = results[
        (results["method"] == "maml") & (results["k"] == 20) & (results["metric"] == "brier")
    ]
    alone = summarise(one, n_boot=500, seed=3)
    shuffled = summarise(results.sample(frac=1.0, random_state=1), n_boot=500, seed=3)
    cols = ["mean", "ci_low", "ci_high"]
    key = (among["method"] == "maml") & (among["k"] == 20) & (among["metric"] == "brier")
    np.testing.assert_array_equal(among.loc[key, cols].to_numpy(), alone[cols].to_numpy())
    pd.testing.assert_frame_equal(among, shuffled)


def test_paired_interval_alone_equals_it_among_others() -> None:
    results = _results()
    table = verdicts(results, ["maml", "local"], ["pooled"], metric="auroc", n_boot=500, seed=2)
    row = table[(table["method"] == "maml") & (table["k"] == 5)].iloc[0]
    alone = paired_comparison(results, "maml", "pooled", "auroc", 5, n_boot=500, seed=2)
    assert (row["ci_low"], row["ci_high"]) == (alone.ci_low, alone.ci_high)
    assert row["difference"] == alone.mean_difference
    # Asking for fewer methods does not move the interval either.
    fewer = verdicts(results, ["maml"], ["pooled"], metric="auroc", n_boot=500, seed=2)
    first = fewer[fewer["k"] == 5].iloc[0]
    assert (first["ci_low"], first["ci_high"]) == (row["ci_low"], row["ci_high"])
