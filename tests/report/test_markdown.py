"""The Markdown summary names every method and K and compares against the best baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metamed.report import summary_markdown


def fake_results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, shift in (("maml", 0.1), ("pooled", 0.0), ("local-logreg", -0.05)):
        for task in ("a", "b", "c", "d", "e"):
            for k in (5, 10):
                for draw in range(3):
                    value = 0.7 + shift + rng.normal(0, 0.01)
                    rows.append((method, "toy", task, k, draw, "auroc", value))
    return pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])


def test_summary_has_tables_and_verdicts():
    text = summary_markdown(fake_results(), baselines=["pooled", "local-logreg"])
    assert "| method | K=5 | K=10 |" in text
    for method in ("maml", "pooled", "local-logreg"):
        assert f"| {method} |" in text
    assert "K=5: maml vs pooled: +0.09" in text and "K=10: maml vs pooled" in text
    assert "Brier" not in text  # only metrics present in the results


def test_summary_without_baselines_has_no_verdicts():
    results = fake_results()
    text = summary_markdown(results[results["method"] == "maml"], baselines=["pooled"])
    assert "Verdicts" not in text


def test_numeric_results_get_error_tables():
    results = fake_results().assign(metric="rmse")
    text = summary_markdown(results, baselines=["pooled"])
    assert "**RMSE**" in text and "(RMSE)" in text
