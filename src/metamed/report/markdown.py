"""A short Markdown summary of a benchmark run, for READMEs and results pages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from metamed.evaluation.metrics import Metric, get_metric, headline_metrics, outcome_kind
from metamed.report.run_statistics import RunStatistics

__all__ = ["summary_markdown"]


def _metric_table(summary: pd.DataFrame, metric: str, methods: Sequence[str]) -> list[str]:
    view = summary[summary["metric"] == metric]
    ks = sorted(view["k"].unique())
    cells = {(str(r["method"]), r["k"]): r for r in view.to_dict("records")}
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        row = [cells.get((method, k)) for k in ks]
        shown = [
            f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r is not None else "-"
            for r in row
        ]
        lines.append(f"| {method} | " + " | ".join(shown) + " |")
    return lines


def _in_order(table: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Verdict rows by dataset and K, and within them in ``methods``' order."""
    position = {m: i for i, m in enumerate(methods)}
    keyed = table.assign(_position=table["method"].map(position))
    ordered = keyed.sort_values(["dataset", "k", "_position"], kind="stable")
    return ordered.drop(columns="_position").reset_index(drop=True)


def summary_markdown(
    results: pd.DataFrame,
    baselines: Sequence[str],
    metrics: Sequence[str] | None = None,
    *,
    statistics: RunStatistics | None = None,
) -> str:
    """Mean [95% bootstrap CI over held-out tasks] per method and K, and the verdicts.

    Methods keep the order in which they appear in ``results``; each meta-learner is
    compared with the best baseline at each K on the same episodes, for every metric
    shown.  By default the metrics shown are the outcome kind's primary and headline
    metrics in the registry (AUROC and Brier score; RMSE and R²).  ``statistics``, the
    same results' tables under the same baselines and default bootstrap settings (as
    the HTML report of the run computes them), saves computing them again.
    """
    stats = RunStatistics(results, baselines).reuse(statistics)
    summary = stats.summary
    methods = [str(m) for m in dict.fromkeys(results["method"])]
    present = set(summary["metric"])
    chosen: list[Metric] = (
        list(headline_metrics(outcome_kind(present)))
        if metrics is None
        else [get_metric(m) for m in metrics]
    )
    shown = [m for m in chosen if m.name in present]
    parts: list[str] = []
    for metric in shown:
        parts += [f"**{metric.label}** (mean over held-out tasks [95% CI])", ""]
        parts += _metric_table(summary, metric.name, methods) + [""]
    others = [m for m in methods if m not in baselines]
    if others and stats.base:
        # discrimination and calibration both get a paired verdict: adapting can help one
        # without the other
        for metric in shown:
            table = _in_order(stats.verdicts(metric.name), others)
            parts += [f"**Verdicts against the best baseline at each K ({metric.label})**", ""]
            parts += [f"- {sentence}" for sentence in table["sentence"]] + [""]
    return "\n".join(parts).rstrip() + "\n"
