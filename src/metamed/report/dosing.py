"""The insulin-dosing report: paired differences with their bootstrap, figures, the HTML page.

Everything here reads a :class:`~metamed.dosing.evaluate.DoseResults` and writes
nothing: :func:`paired_difference_table` (the benchmark's per-cell-seeded bootstrap,
over patients), the glucose-percentile and adaptation-curve figures, and
:func:`render_dose_report`, the report engine's ``dosing.html`` page.
:func:`metamed.runs.run_dose` puts it on disk.  All patients are simulated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from metamed.dosing.evaluate import (
    ANCHORS,
    DoseResults,
    adaptation_table,
    parameter_error_table,
    summary_table,
)
from metamed.dosing.metrics import (
    HYPO_LEVEL2_MG_DL,
    TARGET_HIGH_MG_DL,
    TARGET_LOW_MG_DL,
    pad_to_horizon,
)
from metamed.dosing.patient import AGE_GROUPS
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.report.engine import Image, frame_table, render
from metamed.report.plots import figure_to_png

__all__ = ["paired_difference_table", "render_dose_report"]


def paired_difference_table(
    results: DoseResults,
    pairs: Sequence[tuple[str, str]] = (
        ("personalised", "population"),
        ("basal_bolus", "personalised"),
        ("personalised", "pid"),
    ),
    metrics: Sequence[str] = ("tir_pct", "below_54_pct", "failure_pct"),
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired differences ``a - b`` between controllers, with a bootstrap CI over patients.

    Each patient's metric is averaged over its evaluation days for both controllers (the
    days are paired: identical meals and CGM noise), the per-patient differences are
    averaged, and a percentile 95 % interval is taken over ``n_boot`` resamples of the
    patients (with replacement; a patient's days stay together, so the interval reflects
    between-patient variation, the unit of generalisation).  The bootstrap is the
    benchmark's (:func:`metamed.evaluation.bootstrap.bootstrap_ci`), seeded per cell
    ``("dosing", a, b, age_group, metric)``: an interval does not depend on which other
    pairs, groups or metrics are asked for.  Pairs whose controllers were not evaluated
    are skipped; with one patient the bounds are NaN.

    Returns
    -------
    pandas.DataFrame
        Columns ``comparison, age_group, metric, n_patients, mean_difference, ci_low,
        ci_high, patients_a_better`` (``a`` better = higher TIR, lower everything else).
    """
    df = results.per_patient_day
    present = set(df["controller"])
    rows = []
    for a, b in pairs:
        if a not in present or b not in present:
            continue
        per_patient = (
            df[df["controller"].isin([a, b])]
            .groupby(["controller", "patient", "age_group"])[list(metrics)]
            .mean()
        )
        for group in (*AGE_GROUPS, "all"):
            for metric in metrics:
                wide = per_patient[metric].unstack("controller")
                if group != "all":
                    wide = wide[wide.index.get_level_values("age_group") == group]
                diff = (wide[a] - wide[b]).to_numpy()
                if diff.size == 0:
                    continue
                ci = bootstrap_ci(
                    diff, n_boot=n_boot, level=0.95, seed=seed, cell=("dosing", a, b, group, metric)
                )
                better = diff > 0 if metric == "tir_pct" else diff < 0
                rows.append(
                    {
                        "comparison": f"{a} - {b}",
                        "age_group": group,
                        "metric": metric,
                        "n_patients": int(diff.size),
                        "mean_difference": float(diff.mean()),
                        "ci_low": ci.low,
                        "ci_high": ci.high,
                        "patients_a_better": int(better.sum()),
                    }
                )
    return pd.DataFrame(rows)


def _percentile_png(results: DoseResults, controllers: Sequence[str]) -> bytes:
    n = len(controllers)
    cols = min(n, 2)
    rows_ = int(np.ceil(n / cols))
    fig = Figure(figsize=(5.2 * cols, 3.2 * rows_), layout="constrained")
    dt_h = results.protocol.sample_time_min / 60.0
    for k, name in enumerate(controllers):
        ax = fig.add_subplot(rows_, cols, k + 1)
        bg, _ = pad_to_horizon(results.bg_mg_dl[name])
        hours = (np.arange(bg.shape[1]) + 1) * dt_h
        q = np.percentile(bg, [5, 25, 50, 75, 95], axis=0)
        ax.axhspan(TARGET_LOW_MG_DL, TARGET_HIGH_MG_DL, color="#2a9d8f", alpha=0.12, lw=0)
        ax.axhline(HYPO_LEVEL2_MG_DL, color="#d62828", lw=0.8, ls="--")
        ax.fill_between(hours, q[0], q[4], color="#457b9d", alpha=0.25, lw=0, label="5-95 %")
        ax.fill_between(hours, q[1], q[3], color="#457b9d", alpha=0.5, lw=0, label="25-75 %")
        ax.plot(hours, q[2], color="#1d3557", lw=1.4, label="median")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(0, 24)
        ax.set_ylim(30, 400)
        ax.set_xlabel("time of day (h)")
        ax.set_ylabel("glucose (mg/dL)")
        if k == 0:
            ax.legend(fontsize=7, loc="upper right")
    return figure_to_png(fig)


def _adaptation_png(curve: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    for k, metric in enumerate(("tir_pct", "below_54_pct", "failure_pct")):
        ax = fig.add_subplot(1, 3, k + 1)
        for g in (*AGE_GROUPS, "all"):
            sub = curve[(curve["age_group"] == g) & (curve["days_of_data"] != "oracle (Quest)")]
            if sub.empty:
                continue
            line = ax.plot(sub["days_of_data"].astype(int), sub[metric], marker="o", label=g)
            oracle = curve[(curve["age_group"] == g) & (curve["days_of_data"] == "oracle (Quest)")]
            if not oracle.empty:
                ax.axhline(float(oracle[metric].iloc[0]), color=line[0].get_color(), ls=":", lw=1)
        ax.set_xlabel("days of the patient's own data")
        ax.set_title(metric + " (dotted: oracle)", fontsize=9)
        if k == 0:
            ax.legend(fontsize=7)
    return figure_to_png(fig)


def render_dose_report(results: DoseResults) -> str:
    """Self-contained HTML report (inline PNG figures, metric tables per age group).

    The page is the report engine's ``dosing.html`` template (autoescaped, the benchmark
    report's stylesheet).
    """
    summary = summary_table(results)
    controllers = list(dict.fromkeys(summary["controller"]))
    curve = adaptation_table(results)
    adaptation = None
    if not curve.empty:
        adaptation = {
            "figure": Image(_adaptation_png(curve), "adaptation curve"),
            "curve": frame_table(curve, digits=2),
            "parameter_error": frame_table(parameter_error_table(results), digits=3),
        }
    return render(
        "dosing.html",
        title="metamed dosing report",
        protocol_json=json.dumps(asdict(results.protocol), indent=1),
        percentiles=Image(
            _percentile_png(results, controllers), "glucose percentile bands per controller"
        ),
        summary=frame_table(summary, digits=2),
        adaptation=adaptation,
        anchors=frame_table(ANCHORS, digits=2),
    )
