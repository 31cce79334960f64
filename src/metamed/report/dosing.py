"""The insulin-dosing report: paired differences with their bootstrap, figures, the HTML page.

Everything here reads a :class:`~metamed.dosing.evaluate.DoseResults` and writes
nothing: :func:`paired_difference_table` (the benchmark's per-cell-seeded bootstrap,
over patients), the glucose-percentile and adaptation-curve figures, and
:func:`render_dose_report`, the report engine's ``dosing.html`` page.
:func:`metamed.runs.run_dose` puts it on disk.  All patients are simulated.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    METRIC_LABELS,
    TARGET_HIGH_MG_DL,
    TARGET_LOW_MG_DL,
    pad_to_horizon,
)
from metamed.dosing.patient import AGE_GROUPS
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.report.engine import Image, Table, frame_table, render
from metamed.report.png import figure_to_png

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


#: The adaptation figure's panels: metric, title, whether the axis runs to 100 %.
_ADAPTATION_PANELS = (
    ("tir_pct", "time in range 70-180 mg/dL (%)", True),
    ("below_54_pct", "time below 54 mg/dL (%)", False),
    ("failure_pct", "days ended by glucose < 40 or > 600 (%)", False),
)


def _adaptation_png(curve: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    for k, (metric, title, to_100) in enumerate(_ADAPTATION_PANELS):
        ax = fig.add_subplot(1, 3, k + 1)
        highest = 0.0
        for g in (*AGE_GROUPS, "all"):
            sub = curve[(curve["age_group"] == g) & (curve["days_of_data"] != "oracle (Quest)")]
            if sub.empty:
                continue
            line = ax.plot(sub["days_of_data"].astype(int), sub[metric], marker="o", label=g)
            highest = max(highest, float(sub[metric].max()))
            oracle = curve[(curve["age_group"] == g) & (curve["days_of_data"] == "oracle (Quest)")]
            if not oracle.empty:
                value = float(oracle[metric].iloc[0])
                highest = max(highest, value)
                ax.axhline(value, color=line[0].get_color(), ls=":", lw=1)
        # Percentages on a plain 0-based axis: an all-zero panel once showed a 1e-17 offset.
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.set_ylim(0, 100 if to_100 else max(5.0, 1.2 * highest))
        ax.set_xticks(sorted({int(d) for d in curve["days_of_data"] if d.isdigit()}))
        ax.set_xlabel("days of the patient's own records")
        ax.set_title(title, fontsize=9)
        if k == 0:
            ax.plot([], [], color="#555555", ls=":", lw=1, label="oracle")
            ax.legend(fontsize=7)
    return figure_to_png(fig)


#: The report's names for the summary columns (metric columns from METRIC_LABELS).
_COLUMN_NAMES = {
    "controller": "controller",
    "age_group": "age group",
    "meal_announcement": "meals announced",
    "patient_days": "patient-days",
    "days_of_data": "days of own records",
    **METRIC_LABELS,
}
#: Columns of the main table, in reading order (the rest are in summary.csv).
_MAIN_METRICS = ("tir_pct", "below_70_pct", "below_54_pct", "above_180_pct", "above_250_pct",
                 "risk_index", "failure_pct")  # fmt: skip


def _clinical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda c: _COLUMN_NAMES.get(str(c), str(c)))


def _is_oracle(description: str) -> bool:
    return description.startswith("oracle")


def _named(results: DoseResults, controller: str) -> str:
    """A controller's name as the tables show it: an oracle says so."""
    return f"{controller} (oracle)" if _is_oracle(results.descriptions.get(controller, "")) else controller


def _percent(x: float) -> str:
    return f"{x:.1f}%"


def _conclusion(results: DoseResults, summary: pd.DataFrame, paired: pd.DataFrame) -> list[str]:
    """The written conclusion: what a reader should take away, from the tables below it."""
    overall = summary[summary["age_group"] == "all"].set_index("controller")
    if overall.empty:
        return []
    practical = [c for c in overall.index if not _is_oracle(results.descriptions.get(c, ""))]
    oracles = [c for c in overall.index if c not in practical]
    lines = []
    n_patients = results.per_patient_day["patient"].nunique()
    if practical:
        best = max(practical, key=lambda c: overall.loc[c, "tir_pct"])
        row = overall.loc[best]
        lines.append(
            f"Of the controllers a clinic could use, {best} kept glucose in range (70-180 mg/dL) "
            f"longest: {_percent(row['tir_pct'])} of the time, below 54 mg/dL "
            f"{_percent(row['below_54_pct'])}, over {n_patients} simulated patient(s)."
        )
    for oracle in oracles:
        lines.append(
            f"{oracle} is an oracle ({results.descriptions[oracle].removeprefix('oracle: ')}): its "
            f"{_percent(overall.loc[oracle, 'tir_pct'])} in range is an upper reference, not a "
            "result a clinic could reach."
        )
    pair = (
        paired[
            (paired["comparison"] == "personalised - population")
            & (paired["age_group"] == "all")
            & (paired["metric"] == "tir_pct")
        ]
        if not paired.empty
        else paired
    )
    if not pair.empty:
        p = pair.iloc[0]
        ci = (
            f", 95% CI {p['ci_low']:+.1f} to {p['ci_high']:+.1f}"
            if np.isfinite(p["ci_low"])
            else " (one patient: no interval)"
        )
        lines.append(
            f"Personalisation from {results.protocol.record_days} day(s) of each patient's own "
            f"records changed time in range by {p['mean_difference']:+.1f} percentage points "
            f"over population-average therapy{ci}; it was higher for "
            f"{p['patients_a_better']} of {p['n_patients']} patients."
        )
    failed = summary[summary["age_group"] == "all"]
    if (failed["failure_pct"] > 0).any():
        worst = failed.loc[failed["failure_pct"].idxmax()]
        lines.append(
            f"Some days ended in severe hypo- or hyperglycaemia (glucose < 40 or > 600 mg/dL): "
            f"most often under {worst['controller']}, {_percent(worst['failure_pct'])} of days."
        )
    else:
        lines.append("No simulated day ended in severe hypo- or hyperglycaemia.")
    return lines


def _protocol_table(results: DoseResults) -> Table:
    p = results.protocol
    rows = [
        ["evaluation days per patient and controller", str(p.days)],
        ["seed of the first day (day i uses seed + i)", str(p.seed)],
        ["sample time (CGM reading and control step)", f"{p.sample_time_min} min"],
        ["meals", str(p.scenario)],
        ["CGM sensor noise", "yes" if p.sensor_noise else "no"],
        ["days of own records for personalisation", str(p.record_days)],
        ["leave-patients-out folds", str(p.n_folds)],
        ["seed of the record simulation", str(p.record_seed)],
    ]
    return Table(["setting", "value"], rows, left_cols=2)


def _controllers_table(results: DoseResults, controllers: Sequence[str]) -> Table:
    rows = [
        [
            _named(results, c),
            results.meal_announcement.get(c, "yes"),
            results.descriptions.get(c, "") or "-",
        ]
        for c in controllers
    ]
    return Table(["controller", "meals announced", "what it is"], rows, left_cols=3)


def render_dose_report(results: DoseResults) -> str:
    """Self-contained HTML report (inline PNG figures, metric tables per age group).

    The page is the report engine's ``dosing.html`` template, in the benchmark report's
    look: a written conclusion first, clinical metric names, the oracle named as such.
    """
    summary = summary_table(results)
    controllers = list(dict.fromkeys(summary["controller"]))
    paired = paired_difference_table(results)
    curve = adaptation_table(results)
    adaptation = None
    if not curve.empty:
        adaptation = {
            "figure": Image(_adaptation_png(curve), "adaptation curve"),
            "curve": frame_table(_clinical(curve), digits=2),
            "parameter_error": frame_table(
                parameter_error_table(results).rename(
                    columns={
                        "days_of_data": "days of own records",
                        "age_group": "age group",
                        "cr_rmse_log": "carb ratio",
                        "cf_rmse_log": "correction factor",
                        "basal_rmse_log": "basal rate",
                    }
                ),
                digits=3,
            ),
        }
    shown = summary[["controller", "age_group", "patient_days", *_MAIN_METRICS]].copy()
    shown["controller"] = shown["controller"].map(lambda c: _named(results, str(c)))
    paired_shown = None
    if not paired.empty:
        view = paired[paired["age_group"] == "all"].copy()
        view["metric"] = view["metric"].map(lambda m: METRIC_LABELS.get(m, m))
        view = view.drop(columns=["age_group"]).rename(
            columns={
                "n_patients": "patients",
                "mean_difference": "mean difference a − b",
                "ci_low": "95% CI low",
                "ci_high": "95% CI high",
                "patients_a_better": "patients a did better",
            }
        )
        paired_shown = frame_table(view, digits=1)
    return render(
        "dosing.html",
        title="metamed dosing report",
        conclusion=_conclusion(results, summary, paired),
        protocol=_protocol_table(results),
        controllers=_controllers_table(results, controllers),
        percentiles=Image(
            _percentile_png(results, controllers), "glucose percentile bands per controller"
        ),
        summary=frame_table(_clinical(shown), digits=1),
        paired=paired_shown,
        adaptation=adaptation,
        anchors=frame_table(_clinical(ANCHORS), digits=2),
    )
