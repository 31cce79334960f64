"""A short Markdown summary of a benchmark run, for READMEs and results pages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from metamed.evaluation.statistics import summarise, verdicts

__all__ = ["summary_markdown"]


def _metric_table(summary: pd.DataFrame, metric: str, methods: Sequence[str]) -> list[str]:
    view = summary[summary["metric"] == metric]
    ks = sorted(view["k"].unique())
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for method in methods:
        rows = view[view["method"] == method].set_index("k")
        cells = [
            f"{rows.loc[k, 'mean']:.3f} [{rows.loc[k, 'ci_low']:.3f}, {rows.loc[k, 'ci_high']:.3f}]"
            if k in rows.index
            else "-"
            for k in ks
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    results: pd.DataFrame, baselines: Sequence[str], metrics: Sequence[str] | None = None
) -> str:
    """Mean [95% bootstrap CI over held-out tasks] per method and K, and the verdicts.

    Methods keep the order in which they appear in ``results``; each meta-learner is
    compared with the best baseline at each K on the same episodes, for every metric
    shown.
    """
    summary = summarise(results)
    methods = list(dict.fromkeys(results["method"]))
    present = set(summary["metric"])
    if metrics is None:  # discrimination + calibration, or error + fit for numeric outcomes
        metrics = ("auroc", "brier") if "auroc" in present else ("rmse", "r2")
    parts: list[str] = []
    for metric in metrics:
        if metric in present:
            parts += [f"**{metric.upper()}** (mean over held-out tasks [95% CI])", ""]
            parts += _metric_table(summary, metric, methods) + [""]
    others = [m for m in methods if m not in baselines]
    used_baselines = [b for b in baselines if b in methods]
    if others and used_baselines:
        # discrimination and calibration both get a paired verdict: adapting can help one
        # without the other
        judged = [m for m in metrics if m in present]
        for metric in judged:
            table = verdicts(results, others, used_baselines, metric=metric)
            parts += [f"**Verdicts against the best baseline at each K ({metric.upper()})**", ""]
            parts += [f"- {sentence}" for sentence in table["sentence"]] + [""]
    return "\n".join(parts).rstrip() + "\n"
