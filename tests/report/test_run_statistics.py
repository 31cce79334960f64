"""One run's summary and verdicts, computed once, give both views exactly what they computed alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedValueError
from metamed.report import RunStatistics, render_report, summary_markdown
from metamed.report import run_statistics as module

BASELINES = ["pooled", "local-logreg"]


def two_dataset_results() -> pd.DataFrame:
    """Two datasets, meta-learners listed out of alphabetical order, two metrics."""
    rng = np.random.default_rng(3)
    rows = []
    for dataset in ("toy-b", "toy-a"):
        for method, shift in (("protonet", 0.04), ("maml", 0.08), ("pooled", 0.0), ("local-logreg", -0.03)):
            for task in ("s1", "s2", "s3", "s4", "s5"):
                for k in (5, 10):
                    for draw in range(3):
                        auroc = 0.7 + shift + rng.normal(0, 0.02)
                        brier = 0.2 - shift / 2 + rng.normal(0, 0.01)
                        rows.append((method, dataset, task, k, draw, "auroc", auroc))
                        rows.append((method, dataset, task, k, draw, "brier", brier))
    return pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])


def test_shared_tables_give_the_views_they_give_alone() -> None:
    results = two_dataset_results()
    alone_md = summary_markdown(results, BASELINES)
    alone_html = render_report(results, None, {"timestamp": "t"}, baselines=BASELINES)
    shared = RunStatistics(results, BASELINES)
    assert summary_markdown(results, BASELINES, statistics=shared) == alone_md
    assert render_report(
        results, None, {"timestamp": "t"}, baselines=BASELINES, statistics=shared
    ) == alone_html
    # the Markdown keeps the results' method order (protonet before maml) in its verdicts
    assert alone_md.index("K=5: protonet vs") < alone_md.index("K=5: maml vs")


def test_each_table_is_computed_once_for_both_views(monkeypatch: pytest.MonkeyPatch) -> None:
    results = two_dataset_results()
    calls: list[str | None] = []
    original = module.judged

    def counting(*args: object, **kwargs: object) -> pd.DataFrame:
        calls.append(str(args[3]))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "judged", counting)
    shared = RunStatistics(results, BASELINES)
    summary_markdown(results, BASELINES, statistics=shared)
    render_report(results, None, {}, baselines=BASELINES, statistics=shared)
    assert sorted(calls) == ["auroc", "brier"]


def test_tables_of_other_inputs_are_refused() -> None:
    results = two_dataset_results()
    for other in (
        RunStatistics(results.copy(), BASELINES),  # equal values, another table
        RunStatistics(results, BASELINES, n_boot=100),
        RunStatistics(results, ["pooled"]),
    ):
        with pytest.raises(MetamedValueError, match="statistics were computed for other"):
            summary_markdown(results, BASELINES, statistics=other)
        with pytest.raises(MetamedValueError, match="statistics were computed for other"):
            render_report(results, None, {}, baselines=BASELINES, statistics=other)
