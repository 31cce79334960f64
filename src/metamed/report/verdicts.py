"""Verdicts in words: one sentence per comparison of a method with the best baseline.

:func:`metamed.evaluation.statistics.verdicts` decides (paired difference, bootstrap CI,
Wilcoxon p-value, judgement); this module only says it, for the HTML report, the
Markdown summary and anything else that shows verdicts.  Labels and directions come from
the metric registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metamed.evaluation.metrics import get_metric
from metamed.evaluation.statistics import FEW_TASKS, verdicts

__all__ = [
    "aspect",
    "format_value",
    "format_p",
    "judged",
    "key_findings",
    "plain_finding",
    "verdict_sentence",
    "verdict_sentences",
]


def format_value(x: float, signed: bool = False) -> str:
    """Three decimals, or scientific notation for tiny non-zero values; ``n/a`` for NaN."""
    if not np.isfinite(x):
        return "n/a"
    if x != 0.0 and abs(x) < 0.0005:
        # Would print as +-0.000 and hide which side of 0 a CI bound lies on.
        return f"{x:+.1e}" if signed else f"{x:.1e}"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def format_p(p: float) -> str:
    """``p = 0.38``, ``p = 0.004``, ``p < 0.001`` or ``p = n/a``."""
    if not np.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2f}" if p >= 0.01 else f"p = {p:.3f}"


def verdict_sentence(row: Mapping[str, Any], alpha: float = 0.05, level: float = 0.95) -> str:
    """One row of :func:`~metamed.evaluation.statistics.verdicts` as a sentence.

    Parameters
    ----------
    row : mapping
        ``k, method, baseline, metric, difference, ci_low, ci_high, p_value, n_tasks,
        judgement``.
    alpha : float, default 0.05
        Significance level the judgement used.
    level : float, default 0.95
        Confidence level of the interval.

    Returns
    -------
    str
        E.g. ``"K=10: maml vs pooled: -0.012 AUROC [-0.033, +0.009], p = 0.38 (not
        significant) — no clear difference (95% CI spans 0); 4 tasks; few tasks, so the
        CI is coarse."``
    """
    metric = get_metric(str(row["metric"]))
    method, reference = row["method"], row["baseline"]
    p_value = float(row["p_value"])
    n_tasks = int(row["n_tasks"])
    judgement = str(row["judgement"])
    significant = np.isfinite(p_value) and p_value < alpha
    head = (
        f"K={row['k']}: {method} vs {reference}: "
        f"{format_value(float(row['difference']), True)} {metric.label} "
        f"[{format_value(float(row['ci_low']), True)}, "
        f"{format_value(float(row['ci_high']), True)}], {format_p(p_value)} "
        f"({'significant' if significant else 'not significant'})"
    )
    pct = f"{level * 100:g}%"
    if judgement in ("better", "worse"):
        tail = f"{method} is {judgement} than {reference}"
    elif judgement.startswith("leaning "):
        direction = judgement.removeprefix("leaning ")
        tail = (
            f"{method} may be {direction} than {reference}, but the evidence is weak "
            f"({pct} CI excludes 0, test not significant)"
        )
    elif judgement == "no clear difference" and significant:
        # The CI is of the mean difference, the test is Wilcoxon's signed-rank test of
        # the per-task differences: a few large differences can cancel many small ones of
        # the other sign.  Say which claim holds instead of "significant — no difference".
        tail = (
            f"no clear difference in the mean ({pct} CI spans 0), although the "
            "signed-rank test finds most tasks shifted one way"
        )
    elif judgement == "no clear difference":
        tail = f"no clear difference ({pct} CI spans 0)"
    else:
        tail = "undetermined (fewer than 2 tasks with paired results)"
    note = f"{n_tasks} task{'s' if n_tasks != 1 else ''}"
    if metric.direction != "higher":
        note += f"; {metric.direction_note}"
    if 0 < n_tasks < FEW_TASKS:
        note += "; few tasks, so the CI is coarse"
    return f"{head} — {tail}; {note}."


def verdict_sentences(
    table: pd.DataFrame, alpha: float = 0.05, level: float = 0.95
) -> pd.DataFrame:
    """``table`` (from :func:`~metamed.evaluation.statistics.verdicts`) plus a ``sentence`` column."""
    sentences = [
        verdict_sentence({str(key): value for key, value in row.items()}, alpha, level)
        for row in table.to_dict("records")
    ]
    return table.assign(sentence=pd.Series(sentences, index=table.index, dtype=object))


def judged(
    results: pd.DataFrame,
    methods: Sequence[str],
    baselines: Sequence[str],
    metric: str | None = None,
    *,
    alpha: float = 0.05,
    level: float = 0.95,
    **settings: Any,
) -> pd.DataFrame:
    """:func:`~metamed.evaluation.statistics.verdicts` with their sentences.

    ``settings`` (``n_boot``, ``seed``, ``test_unit``) are passed on unchanged.
    """
    table = verdicts(
        results, methods, baselines, metric=metric, alpha=alpha, level=level, **settings
    )
    return verdict_sentences(table, alpha=alpha, level=level)


#: What a metric measures, in a clinician's words: (aspect, "better" phrase, "worse"
#: phrase). Brier score mixes calibration and discrimination; with discrimination stated
#: beside it, what it adds is calibration, which is how the findings name it.
_ASPECTS: dict[str, tuple[str, str, str]] = {
    "auroc": ("discrimination", "discriminates better", "discriminates worse"),
    "auprc": ("precision-recall", "better precision-recall", "worse precision-recall"),
    "brier": ("calibration", "better calibrated", "less well calibrated"),
    "rmse": ("accuracy", "more accurate", "less accurate"),
    "mae": ("accuracy", "more accurate", "less accurate"),
}


def aspect(metric_name: str) -> str:
    """What a metric measures (``"discrimination"`` for AUROC), or its label."""
    known = _ASPECTS.get(metric_name)
    return known[0] if known else get_metric(metric_name).label


def plain_finding(row: Mapping[str, Any]) -> str:
    """One verdict row in plain words, the size of the difference stated as a gain or loss.

    E.g. ``"no evidence of a difference from pooled (AUROC -0.012, 95% CI -0.038 to
    +0.009)"`` or ``"better calibrated than pooled-finetune, by 0.020 Brier score (95% CI
    0.010 to 0.030)"``: an improvement is a positive number whichever way the metric runs.
    """
    metric = get_metric(str(row["metric"]))
    _, better, worse = _ASPECTS.get(
        metric.name, (metric.label, f"better on {metric.label}", f"worse on {metric.label}")
    )
    reference = row["baseline"]
    judgement = str(row["judgement"])
    n_tasks = int(row["n_tasks"])
    diff, low, high = (float(row[c]) for c in ("difference", "ci_low", "ci_high"))
    sign = 1.0 if metric.direction == "higher" else -1.0
    gain, gain_low, gain_high = sign * diff, *sorted((sign * low, sign * high))

    def by(size: float, lo: float, hi: float) -> str:
        return f"by {format_value(size)} {metric.label} (95% CI {format_value(lo)} to {format_value(hi)})"

    if judgement == "better":
        return f"{better} than {reference}, {by(gain, gain_low, gain_high)}"
    if judgement == "worse":
        return f"{worse} than {reference}, {by(-gain, -gain_high, -gain_low)}"
    if judgement.startswith("leaning "):
        up = judgement == "leaning better"
        phrase = better if up else worse
        size = by(gain, gain_low, gain_high) if up else by(-gain, -gain_high, -gain_low)
        return f"perhaps {phrase} than {reference}, {size}, but {n_tasks} tasks are too few to be sure"
    if judgement == "no clear difference":
        return (
            f"no evidence of a difference from {reference} ({metric.label} "
            f"{format_value(diff, True)}, 95% CI {format_value(low, True)} to "
            f"{format_value(high, True)})"
        )
    return f"too few held-out tasks to compare with {reference}"


def key_findings(tables: Sequence[pd.DataFrame]) -> list[str]:
    """One line per method at the largest K, every headline metric in it, in plain words.

    ``tables`` are verdict tables (:func:`~metamed.evaluation.statistics.verdicts`) of
    the headline metrics, discrimination first, e.g. ``"maml (K=40): discrimination: no
    evidence of a difference from pooled (...); calibration: better calibrated than
    pooled-finetune, by 0.004 Brier score (...)."``
    """
    tables = [t for t in tables if not t.empty]
    if not tables:
        return []
    k = max(int(t["k"].max()) for t in tables)
    methods = list(dict.fromkeys(m for t in tables for m in t.loc[t["k"] == k, "method"]))
    lines = []
    for method in methods:
        parts = []
        for table in tables:
            rows = table[(table["k"] == k) & (table["method"] == method)]
            for row in rows.to_dict("records"):
                parts.append(f"{aspect(str(row['metric']))}: {plain_finding(row)}")
        lines.append(f"{method} (K={k}): " + "; ".join(parts) + ".")
    return lines
