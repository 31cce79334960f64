"""Regenerate docs/results/dosing.md: controllers and personalisation on virtual patients.

Usage::

    .venv/bin/python benchmarks/dosing_results.py            # full protocol (~1 min, 2 cores)
    .venv/bin/python benchmarks/dosing_results.py --quick    # smoke run, not for the docs

Prints the page and writes it (and benchmarks/results/dosing_per_patient_day.csv).
All patients are simulated (UVA/Padova / simglucose virtual patients).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.dosing.closedloop import candidate_grid, population_leave_patients_out
from metamed.dosing.controllers import BasalBolusController, tdi_rule_therapy
from metamed.dosing.evaluate import (
    ANCHORS,
    CONTROLLER_NAMES,
    DoseProtocol,
    adaptation_table,
    evaluate_controllers,
    g2p2c_scoring_table,
    parameter_error_table,
    summary_table,
)
from metamed.dosing.patient import load_virtual_patients
from metamed.dosing.personalise import CAUTIOUS, TherapyPersonaliser
from metamed.dosing.registry import (
    ControllerContext,
    ControllerEntry,
    controller_names,
    register_controller,
)
from metamed.report.dosing import paired_difference_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "dosing.md"
THROUGHPUT = ROOT / "benchmarks" / "results" / "sim_throughput.json"
#: The built-ins, and four of them behind predictive low-glucose suspend (issue 11).
CONTROLLERS = (
    *CONTROLLER_NAMES,
    "population+plgs",
    "personalised+plgs",
    "personalised_cautious+plgs",
    "pid+plgs",
    "closed_loop",
)
#: How cautious the hypoglycaemia-aware personalisation is in the risk-aversion ablation
#: (DoseProtocol's default, 1.0, was fixed before any of these runs).
RISK_AVERSIONS = (0.5, 1.0, 1.5)
#: (evaluation seed, record seed) of the robustness table: the page's own protocol first,
#: then other evaluation days and device records (their roles in SEED_ROLES).
ROBUSTNESS_SEEDS = ((0, 1000), (100, 2000), (200, 3000), (300, 4000))
#: how the robustness table calls each pair: the page's own, the two that the fasting drift
#: and the glucose-scaled correction were tried on after being chosen, and one run only
#: once both were fixed
SEED_ROLES = {1000: "the page's", 2000: "tried on", 3000: "tried on", 4000: "untouched"}
CAUTIOUS_LINEAR = "personalised_cautious_linear"
ROBUSTNESS_SETTINGS = (
    "personalised+plgs",
    "personalised_cautious+plgs",
    f"{CAUTIOUS_LINEAR}+plgs",
)
BEFORE_SETTINGS = ("personalised+plgs", f"{CAUTIOUS_LINEAR}+plgs")
#: column of the robustness table for each check of the goal
GOAL_COLUMNS = {
    "adults below 54 mg/dL": "adult_below_54_pct",
    "adolescents below 54 mg/dL": "adolescent_below_54_pct",
    "adult failed days": "adult_failure_pct",
    "adolescent failed days": "adolescent_failure_pct",
    "children's failed days": "child_failure_pct",
    "time in range overall": "all_tir_pct",
}
PAIRS = (
    ("personalised", "population"),
    ("basal_bolus", "personalised"),
    ("personalised", "pid"),
    ("personalised+plgs", "personalised"),
    ("personalised_cautious", "personalised"),
    ("population+plgs", "population"),
)
#: Paired comparisons of the fully closed loop (issue 11, third part).
CLOSED_LOOP_PAIRS = (
    ("closed_loop", "closed_loop_0d"),
    ("closed_loop", "pid"),
    ("closed_loop", "basal_bolus_g2p2c"),
)
#: Issue 11's goals for the closed loop, scored as the G2P2C code scores:
#: (age group, metric, "min"/"max", bound, strict).
CLOSED_LOOP_GOALS = (
    ("adult", "cgm_tir_completed_pct", "min", 75.0, False),
    ("adult", "below_54_pct", "max", 0.5, False),
    ("adult", "failure_pct", "max", 0.0, False),
    ("adolescent", "cgm_tir_completed_pct", "min", 64.3, True),
    ("child", "cgm_tir_completed_pct", "min", 63.6, True),
)


def md_table(df: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub-markdown table (no extra dependency)."""

    def fmt(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "-" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def throughput_section() -> str:
    if not THROUGHPUT.exists():
        return (
            "Simulator throughput: `benchmarks/results/sim_throughput.json` was not present "
            "when this page was generated."
        )
    d = json.loads(THROUGHPUT.read_text())
    sg = d.get("simglucose") or {}
    m = d["machine"]
    lines = [
        "## Simulator throughput",
        "",
        f"Written by `{d['command']}` "
        "([`benchmarks/results/sim_throughput.md`](../../benchmarks/results/sim_throughput.md)); "
        "closed loop (the vector environment's rollout), basal-bolus, noisy GuardianRT CGM, "
        f"Insulet pump, 1-minute model steps, {m['cpu_count']}-CPU shared machine (1-min load "
        f"average {m['load_average_1min_before_after'][0]:.1f}); compute floor = the compiled "
        "integrator alone. Goal (issue 11): 10,000 patient-days/s on 2 cores for 1,000+ patients.",
        "",
        "| patients | model threads | closed loop, patient-days/s | compute floor, patient-days/s |",
        "|---|---|---|---|",
    ]
    for row in d["rows"]:
        loop, floor = row["closed_loop"], row["compute_floor"]
        threads = m["numba_threads"] if loop["parallel"] else 1
        lines.append(
            f"| {loop['n_patients']} | {threads} | {loop['patient_days_per_s']:.0f} | "
            f"{floor['patient_days_per_s']:.0f} |"
        )
    goal = d["goal_patient_days_per_s"]
    verdicts = []
    for row in d["rows"]:
        loop = row["closed_loop"]
        if loop["n_patients"] >= 1000 and loop["parallel"]:
            rate = loop["patient_days_per_s"]
            verdicts.append(
                f"{loop['n_patients']:,} patients: "
                + (f"met ({rate:,.0f})" if rate >= goal
                   else f"missed by {goal - rate:,.0f} patient-days/s ({rate:,.0f})")
            )  # fmt: skip
    lines.append(
        f"\nGoal of {goal:,.0f} patient-days/s for the closed loop on 2 cores: "
        + "; ".join(verdicts) + "."
    )
    if sg:
        lines.append(
            f"\nsimglucose {sg['version']}: {sg['patient_days_per_s']:.3f} patient-days/s."
        )
    return "\n".join(lines)


def ablation(protocol: DoseProtocol) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The personaliser with record summaries added to the calibration (same records)."""
    alt = evaluate_controllers(
        ["personalised"],
        protocol=protocol,
        personaliser=TherapyPersonaliser(summary_features=True),
    )
    errors = parameter_error_table(alt)
    outcome = summary_table(alt)
    cols = ["age_group", "tir_pct", "below_54_pct", "above_250_pct", "risk_index", "failure_pct"]
    return errors[errors["age_group"] == "all"].reset_index(drop=True), outcome[cols]


def _cautious_linear(ctx: ControllerContext) -> list:
    """``personalised_cautious`` with the clinical (linear) correction: the ablation."""
    tp = ctx.therapy[f"{ctx.record_days}d{CAUTIOUS}"]
    ctrl = BasalBolusController(
        tp.basal_u_per_h, tp.carb_ratio_g_per_u, tp.correction_factor_mg_dl_per_u
    )
    return [(CAUTIOUS_LINEAR, ctrl)]


def seed_robustness(protocol: DoseProtocol) -> pd.DataFrame:
    """The safe controllers' goal on other evaluation days and records, with and without
    the fasting drift and the glucose-scaled correction: one row per (seeds, variant)."""
    if CAUTIOUS_LINEAR not in controller_names():
        register_controller(
            ControllerEntry(
                CAUTIOUS_LINEAR,
                _cautious_linear,
                "yes",
                needs_personalisation=True,
                description="personalised_cautious with the linear correction (ablation)",
            )
        )
    rows = []
    for seed, record_seed in ROBUSTNESS_SEEDS:
        for drift in (True, False):
            # without the drift only the settings of the page before both changes
            settings = ROBUSTNESS_SETTINGS if drift else BEFORE_SETTINGS
            run = evaluate_controllers(
                list(settings),
                protocol=dataclasses.replace(protocol, seed=seed, record_seed=record_seed),
                personaliser=TherapyPersonaliser(fasting_drift=drift),
            )
            summary = summary_table(run)
            for ctrl in settings:
                checks = goal_checks(summary, ctrl)
                rows.append(
                    {
                        "evaluation_seeds": f"{seed}..{seed + protocol.days - 1}",
                        "record_seed": record_seed,
                        "fasting_drift": "yes" if drift else "no",
                        "controller": ctrl,
                        **{GOAL_COLUMNS[what]: value for what, value, *_ in checks},
                        "goal": "met" if all(c[-1] for c in checks) else "missed",
                    }
                )
    return pd.DataFrame(rows)


def risk_aversion_ablation(protocol: DoseProtocol) -> pd.DataFrame:
    """``personalised_cautious`` at each of :data:`RISK_AVERSIONS` (same records and folds)."""
    rows = []
    for z in RISK_AVERSIONS:
        run = evaluate_controllers(
            ["personalised_cautious"], protocol=dataclasses.replace(protocol, risk_aversion=z)
        )
        table = summary_table(run)
        table.insert(0, "risk_aversion", z)
        rows.append(table)
    cols = ["risk_aversion", "age_group", "tir_pct", "below_54_pct", "above_250_pct",
            "risk_index", "failure_pct"]  # fmt: skip
    return pd.concat(rows, ignore_index=True)[cols]


def failed_patients(results, ctrl: str) -> str:
    """Which patients' days failed under ``ctrl``: counts, and from the glucose traces the
    median glucose at 06:00 and the median time of the failure on those days."""
    df = results.per_patient_day
    df = df[df["controller"] == ctrl].reset_index(drop=True)  # row order = its traces'
    bg = results.bg_mg_dl[ctrl]
    step_min = results.protocol.sample_time_min
    six = int(6 * 60 / step_min)
    days = int(results.protocol.days)
    parts = []
    for patient, rows in df[df["failure_pct"] > 0].groupby("patient").groups.items():
        traces = bg[np.asarray(rows)]
        at_six = np.nanmedian(traces[:, six])
        ends = [np.flatnonzero(~np.isfinite(t))[0] * step_min for t in traces]
        end = float(np.median(ends))
        parts.append(
            f"{patient} ({len(rows)} of {days} days; median glucose at 06:00 {at_six:.0f} "
            f"mg/dL, median failure at {int(end // 60):02d}:{int(end % 60):02d})"
        )
    return ", ".join(parts) or "none"


def reading(summary: pd.DataFrame) -> list[str]:
    """Plain-language comparison computed from the summary table."""

    def get(ctrl: str, group: str, metric: str) -> float:
        row = summary[(summary["controller"] == ctrl) & (summary["age_group"] == group)]
        return float(row[metric].iloc[0]) if len(row) else float("nan")

    out = ["## Reading the results", ""]
    if {"population", "personalised", "basal_bolus"} <= set(summary["controller"]):
        for g in ("adult", "adolescent", "child", "all"):
            out.append(
                f"- {g}: time in range {get('population', g, 'tir_pct'):.1f} % with population "
                f"parameters, {get('personalised', g, 'tir_pct'):.1f} % personalised, "
                f"{get('basal_bolus', g, 'tir_pct'):.1f} % with the oracle; failures "
                f"{get('population', g, 'failure_pct'):.1f} -> "
                f"{get('personalised', g, 'failure_pct'):.1f} % (oracle "
                f"{get('basal_bolus', g, 'failure_pct'):.1f} %); below 54 mg/dL "
                f"{get('population', g, 'below_54_pct'):.2f} -> "
                f"{get('personalised', g, 'below_54_pct'):.2f} % (oracle "
                f"{get('basal_bolus', g, 'below_54_pct'):.2f} %)."
            )
        out += [
            "",
            "Personalisation closes most of the gap between population and oracle parameters",
            "where the numbers above say so, and not where they do not: children in particular",
            "keep more hypoglycaemia and failures than with their oracle parameters. The",
            "population therapy itself is unsafe for many virtual patients (the carbohydrate",
            "ratios within an age group span a factor of 3.5 to 6), which is what makes a few days",
            "of the patient's own data valuable, and what makes the record days themselves risky.",
            "",
        ]
    return out


def goal_checks(summary: pd.DataFrame, ctrl: str) -> list[tuple[str, float, float, str, bool]]:
    """Issue 11's safe-personalisation goal for ``ctrl``: (what, value, target, sense, met)."""

    def get(group: str, metric: str) -> float:
        row = summary[(summary["controller"] == ctrl) & (summary["age_group"] == group)]
        return float(row[metric].iloc[0]) if len(row) else float("nan")

    checks = [
        ("adults below 54 mg/dL", get("adult", "below_54_pct"), 1.0, "at most"),
        ("adolescents below 54 mg/dL", get("adolescent", "below_54_pct"), 1.0, "at most"),
        ("adult failed days", get("adult", "failure_pct"), 0.0, "at most"),
        ("adolescent failed days", get("adolescent", "failure_pct"), 0.0, "at most"),
        ("children's failed days", get("child", "failure_pct"), 2.0, "at most"),
        ("time in range overall", get("all", "tir_pct"), 80.0, "at least"),
    ]
    return [
        (what, value, target, sense, value <= target if sense == "at most" else value >= target)
        for what, value, target, sense in checks
    ]


def safety_goal(summary: pd.DataFrame, ctrl: str = "personalised+plgs") -> list[str]:
    """Issue 11's safe-personalisation goal, met or missed by how much, from the summary."""
    out = [f"Issue 11's goal after 3 days, for `{ctrl}`:", ""]
    for what, value, target, sense, met in goal_checks(summary, ctrl):
        verdict = "met" if met else f"**missed** by {abs(value - target):.2f} points"
        out.append(f"- {what}: {value:.2f} % (goal {sense} {target:g} %): {verdict}.")
    bare = ctrl.removesuffix("+plgs")
    if bare == ctrl:
        return [*out, ""]

    def of(c: str, group: str, metric: str) -> float:
        row = summary[(summary["controller"] == c) & (summary["age_group"] == group)]
        return float(row[metric].iloc[0]) if len(row) else float("nan")

    out += ["", f"What the suspend changes against `{bare}` alone (paired differences above):", ""]
    for group in ("adult", "adolescent", "child", "all"):
        out.append(
            f"- {group}: below 54 mg/dL {of(bare, group, 'below_54_pct'):.2f} -> "
            f"{of(ctrl, group, 'below_54_pct'):.2f} %, failed days "
            f"{of(bare, group, 'failure_pct'):.1f} -> {of(ctrl, group, 'failure_pct'):.1f} %, "
            f"time in range {of(bare, group, 'tir_pct'):.1f} -> {of(ctrl, group, 'tir_pct'):.1f} %."
        )
    return [*out, ""]


def safety_section(
    results,
    summary: pd.DataFrame,
    ablated_z: pd.DataFrame | None,
    robustness: pd.DataFrame | None = None,
) -> list[str]:
    """The goal for the suspend and for the cautious personalisation, and what fails."""
    out = [
        "## Safe personalisation: the goal",
        "",
        "Two safety layers, each scored against issue 11's goal. `+plgs` is predictive",
        "low-glucose suspend (basal withheld while the CGM, extrapolated along its 20-minute",
        "trend, is predicted below 80 mg/dL within 30 min; resumed on recovery).",
        "`personalised_cautious` is the hypoglycaemia-aware personalisation: the carbohydrate",
        "ratio and correction factor move one leave-one-out error of the calibration",
        "(`TherapyPersonaliser.loo_rmse_`, on the log scale) toward smaller boluses, and the",
        "basal rate keeps its estimate (`TherapyPersonaliser.adapt(..., risk_aversion=1)`);",
        "its corrections are scaled by the glucose (below).",
        "",
    ]
    for ctrl in ("personalised+plgs", "personalised_cautious", "personalised_cautious+plgs"):
        out += safety_goal(summary, ctrl)
    out += [
        "Patients whose days failed under `personalised_cautious`: "
        f"{failed_patients(results, 'personalised_cautious')}; under the oracle "
        f"`basal_bolus`: {failed_patients(results, 'basal_bolus')}.",
        "",
        "What the traces said before this page's two changes: child#004's estimated basal",
        "stayed near its group's population value, below its Quest basal, so its glucose",
        "climbed overnight, and the breakfast bolus with its correction then took it below",
        "40 mg/dL on every evaluation day (10 % of the children's days under every",
        "personalised setting). Withholding basal (the suspend) cannot take back a bolus",
        "already delivered, and a cautious basal only raised the morning glucose and the",
        "correction. Two changes followed from that trace:",
        "",
        "- the calibration gained the records' fasting drift under the recording basal (the",
        "  quantity a clinician titrates a basal rate by; the model's own basal-like quantity",
        "  hardly moved the calibrated basal): `TherapyPersonaliser(fasting_drift=True)`, the",
        "  default, for every personalised setting;",
        "- `personalised_cautious` doses its corrections as the personaliser's model has",
        "  insulin act, in proportion to the glucose (`BasalBolusController(correction=",
        "  \"glucose_scaled\")`: `(120 / CF) ln(CGM / 140)` units instead of",
        "  `(CGM - 140) / CF`, 40 % less from 280 mg/dL). The oracle and `personalised` keep",
        "  the clinical linear correction.",
        "",
        "Both were chosen after looking at this patient on the page's evaluation days, and",
        "tried on two more (evaluation, record) seed pairs before being fixed, so those three",
        "pairs are not an independent test. The last pair was run only once both changes",
        "were fixed. The table repeats the goal on every pair (same patients, folds and",
        "settings); `personalised_cautious_linear` is the cautious setting with the linear",
        "correction, and `fasting_drift = no` rows are the page before both changes.",
        "",
    ]
    if robustness is not None:
        table = robustness.copy()
        table.insert(2, "seeds", table["record_seed"].map(SEED_ROLES))
        out += [md_table(table), ""]
        for drift, ctrl in [("yes", c) for c in ROBUSTNESS_SETTINGS] + [
            ("no", c) for c in BEFORE_SETTINGS
        ]:
            sel = robustness[
                (robustness["fasting_drift"] == drift) & (robustness["controller"] == ctrl)
            ]
            untouched = sel[sel["record_seed"] == ROBUSTNESS_SEEDS[-1][1]]
            out.append(
                f"- `{ctrl}`, fasting drift {drift}: goal met on "
                f"{int((sel['goal'] == 'met').sum())} of {len(sel)} seed pairs"
                f" (untouched pair: {', '.join(untouched['goal'])}); children's failed days "
                f"{', '.join(f'{v:.0f}' for v in sel['child_failure_pct'])} % (goal at most 2 %);"
                f" time in range {', '.join(f'{v:.1f}' for v in sel['all_tir_pct'])} %."
            )
        out.append("")
    if ablated_z is not None:
        out += [
            "Risk-aversion ablation (`personalised_cautious` at other values of",
            "`DoseProtocol.risk_aversion`; same records, folds and evaluation days). The default",
            "(1.0) was fixed before these runs; the other rows were evaluated on the same",
            "patients, so choosing among them by this table would tune on the test patients.",
            "",
            md_table(ablated_z),
            "",
        ]
    return out


# Protocol of the G2P2C paper's public code vs ours; each row cites where the choice comes from.
PROTOCOL_ROWS = [
    (
        "simulator",
        "simglucose (requirements.txt pins 0.2.2; Readme says 0.2.1)",
        "own UVA/Padova code matching simglucose 0.2.11 to 0.015 mg/dL",
        "RL4H/G2P2C requirements.txt, Readme.md",
    ),
    (
        "meals (adults, adolescents)",
        "3 main meals, p = 0.95 each, 45/85/80 g (SD 5/5/10, uniform +-3 SD), times "
        "truncated normal in 07-09/12-14/19-21 h (SD 60 min), snacks off",
        "same (G2P2CMealScenario)",
        "utils/options.py (meal_prob, meal_amount, meal_variance, time_variance), "
        "utils/extended_scenario.py",
    ),
    (
        "meals (children)",
        "30/45/45 g (SD 5), commented-out alternative in options.py",
        "same",
        "utils/options.py (children block)",
    ),
    (
        "basal-bolus therapy",
        "CR = 500/TDI, CF = 1800/TDI, basal = 0.48 TDI/24 h",
        "`basal_bolus_g2p2c` (same rule); `basal_bolus` uses Quest CR/CF and steady-state basal",
        "agents/std_bb/BBController.py (adjust_parameters)",
    ),
    (
        "correction bolus",
        "(CGM - 140)/CF if CGM > 150 at a meal, not within 3 h of a previous meal",
        "same in `basal_bolus_g2p2c` (correction_cooldown_min=180); no cooldown in `basal_bolus`",
        "agents/std_bb/BBController.py (past_meal_memory, cooldown)",
    ),
    (
        "meal announcement",
        "20 min before the meal (t_meal = 20), bolus then",
        "same in `basal_bolus_g2p2c` (announce_ahead_min=20); at the meal in `basal_bolus`",
        "utils/options.py (t_meal), utils/extended_T1DSimEnv.py (announce_meal)",
    ),
    (
        "carbohydrate counting error",
        "none by default (carb_estimation_method='real'; the Readme command uses 'real')",
        "none",
        "utils/options.py, utils/carb_counting.py, Readme.md",
    ),
    (
        "sensor / pump",
        "GuardianRT (5 min), Insulet",
        "same",
        "utils/options.py (sensor, pump)",
    ),
    (
        "episode",
        "288 steps (24 h) starting 23:00; re-drawn until the first CGM is in (110, 130)",
        "24 h starting 00:00; initial glucose randomised, no rejection",
        "experiments/run_clinical_treatment.py, utils/extended_T1DSimEnv.py (hour = 23)",
    ),
    (
        "failure",
        "CGM <= 40 or >= 600 ends the episode",
        "same for `basal_bolus_g2p2c` (failure_signal='cgm'); noise-free BG < 40 or > 600 "
        "elsewhere",
        "experiments/run_clinical_treatment.py",
    ),
    (
        "time in range",
        "CGM readings with 70 < CGM <= 180, averaged over completed (non-failed) episodes",
        "`cgm_tir_completed_pct` (same); our `tir_pct` uses noise-free BG over every day",
        "utils/core.py (time_in_range), run_clinical_treatment.py (complete_results)",
    ),
    (
        "evaluation size",
        "1500 one-day trials per patient (script default)",
        "10 one-day episodes per patient, seeds 0..9",
        "experiments/run_clinical_treatment.py (n_trials)",
    ),
]


def anchor_comparison(results) -> pd.DataFrame:
    """Anchors beside our controllers, scored as the G2P2C code scores."""
    scored = g2p2c_scoring_table(results)

    def ours(ctrl: str, group: str, col: str) -> float:
        row = scored[(scored["controller"] == ctrl) & (scored["age_group"] == group)]
        return float(row[col].iloc[0]) if len(row) else float("nan")

    rows = []
    for _, a in ANCHORS.iterrows():
        ctrls = (
            ["closed_loop", "pid"]
            if a["meal_announcement"] == "no"
            else ["basal_bolus_g2p2c", "basal_bolus_quest_g2p2c", "basal_bolus"]
        )
        for ctrl in ctrls:
            if ctrl not in set(results.per_patient_day["controller"]):
                continue
            rows.append(
                {
                    "age_group": a["age_group"],
                    "anchor": a["source"],
                    "anchor_tir_pct": a["tir_pct"],
                    "ours": ctrl,
                    "ours_cgm_tir_completed_pct": ours(
                        ctrl, a["age_group"], "cgm_tir_completed_pct"
                    ),
                    "ours_tir_pct": ours(ctrl, a["age_group"], "tir_pct"),
                    "ours_failure_pct": ours(ctrl, a["age_group"], "failure_pct"),
                }
            )
    return pd.DataFrame(rows)


def anchor_reading(results) -> list[str]:
    cmp = anchor_comparison(results)
    if cmp.empty:
        return []

    adults = load_virtual_patients("adult")
    basal, cr, cf = tdi_rule_therapy(adults.total_daily_insulin_u)
    basal_ratio = basal / adults.basal_u_per_h
    cr_ratio = cr / adults.carb_ratio_g_per_u
    cf_ratio = cf / adults.correction_factor_mg_dl_per_u
    basal_lo, basal_hi = basal_ratio.min(), basal_ratio.max()
    cr_lo, cr_hi = cr_ratio.min(), cr_ratio.max()
    cf_lo, cf_hi = cf_ratio.min(), cf_ratio.max()

    def v(ctrl: str, col: str, group: str = "adult") -> float:
        row = cmp[(cmp["ours"] == ctrl) & (cmp["age_group"] == group)]
        return float(row[col].iloc[0]) if len(row) else float("nan")

    cgm = "ours_cgm_tir_completed_pct"
    noise_pts = v("basal_bolus", cgm) - v("basal_bolus", "ours_tir_pct")
    protocol_pts = v("basal_bolus_quest_g2p2c", cgm) - v("basal_bolus", cgm)
    therapy_pts = v("basal_bolus_g2p2c", cgm) - v("basal_bolus_quest_g2p2c", cgm)
    return [
        "Why our oracle basal-bolus is far above the 71.0 % anchor (adults), from the",
        "decomposition above (same patient-days for every row):",
        "",
        f"- our `basal_bolus` (Quest therapy, bolus at the meal): {v('basal_bolus', 'ours_tir_pct'):.1f} % "
        f"on noise-free glucose, {v('basal_bolus', 'ours_cgm_tir_completed_pct'):.1f} % scored on the "
        f"CGM as G2P2C scores (scoring: {noise_pts:+.1f} points);",
        "- the G2P2C protocol with the *Quest* therapy (20-min pre-bolus, 3 h correction "
        f"cooldown): {v('basal_bolus_quest_g2p2c', 'ours_cgm_tir_completed_pct'):.1f} % (CGM-scored), "
        f"i.e. {protocol_pts:+.1f} points from the protocol;",
        "- the G2P2C basal-bolus *therapy* (500/1800 rules, basal = 48 % of TDI): "
        f"{v('basal_bolus_g2p2c', 'ours_cgm_tir_completed_pct'):.1f} % (CGM-scored), failures "
        f"{v('basal_bolus_g2p2c', 'ours_failure_pct'):.1f} %, i.e. {therapy_pts:+.1f} points from "
        "the therapy rule. For the 10 adults the rule's basal is "
        f"{basal_lo:.2f}-{basal_hi:.2f}x the steady-state basal that holds each virtual "
        f"patient at its basal glucose, its CR {cr_lo:.2f}-{cr_hi:.2f}x and its CF "
        f"{cf_lo:.1f}-{cf_hi:.1f}x the Quest values (a larger CF means smaller corrections).",
        "",
        "What remains different and may explain the rest of the gap to 71.0 %: the simulator",
        "version (G2P2C pins simglucose 0.2.2; we match 0.2.11, and simglucose changed its",
        "gastric-emptying `Dbar` units after a 2021 bug report, jxx123/simglucose#41; whether",
        "0.2.2 already had the fix is not stated in the public material), the 23:00 start with",
        "initial-CGM rejection, the number of trials, and whether the paper's reported run used",
        "the default `real` carbohydrate estimate (its text was not available to us). We have",
        "not tuned anything towards the anchor.",
        "",
    ]


def closed_loop_section(results, training: dict) -> list[str]:
    """Issue 11's fully closed loop beside G2P2C, PID and basal-bolus, with its goals."""
    df = results.per_patient_day
    if "closed_loop" not in set(df["controller"]):
        return []
    rd = results.protocol.record_days
    labels = {f"closed_loop_{d}d": d for d in range(rd)} | {"closed_loop": rd}
    done = df[df["failure_pct"] == 0]

    def cell(ctrl: str, group: str) -> dict[str, float]:
        sel = df[(df["controller"] == ctrl) & ((df["age_group"] == group) | (group == "all"))]
        ok = done[(done["controller"] == ctrl) & ((done["age_group"] == group) | (group == "all"))]
        return {
            "cgm_tir_completed_pct": float(ok["cgm_tir_pct"].mean()) if len(ok) else np.nan,
            "tir_pct": float(sel["tir_pct"].mean()),
            "below_70_pct": float(sel["below_70_pct"].mean()),
            "below_54_pct": float(sel["below_54_pct"].mean()),
            "above_250_pct": float(sel["above_250_pct"].mean()),
            "failure_pct": float(sel["failure_pct"].mean()),
        }

    beside = []
    for group in ("adult", "adolescent", "child", "all"):
        for _, a in ANCHORS[
            (ANCHORS["age_group"] == group) & (ANCHORS["meal_announcement"] == "no")
        ].iterrows():
            beside.append(
                {"controller": a["source"], "age_group": group, "meal_announcement": "no",
                 "cgm_tir_completed_pct": a["tir_pct"], "tir_pct": np.nan,
                 "below_70_pct": np.nan, "below_54_pct": a["below_54_pct"],
                 "above_250_pct": np.nan, "failure_pct": a["failure_pct"]}
            )  # fmt: skip
        for ctrl in ("closed_loop", "pid", "basal_bolus_g2p2c", "basal_bolus"):
            if ctrl in set(df["controller"]):
                beside.append(
                    {"controller": ctrl, "age_group": group,
                     "meal_announcement": results.meal_announcement.get(ctrl, "yes")}
                    | cell(ctrl, group)
                )  # fmt: skip
    curve = [
        {"days_of_data": d, "age_group": group} | cell(label, group)
        for group in ("adult", "adolescent", "child", "all")
        for label, d in labels.items()
    ]
    goal_lines = []
    for group, metric, kind, bound, strict in CLOSED_LOOP_GOALS:
        value = cell("closed_loop", group)[metric]
        met = (value > bound if strict else value >= bound) if kind == "min" else value <= bound
        word = ("above" if strict else "at least") if kind == "min" else "at most"
        verdict = "met" if met else f"**missed** by {abs(value - bound):.2f} points"
        goal_lines.append(
            f"- {group} `{metric}`: {value:.2f} % (goal {word} {bound:g} %): {verdict}."
        )
    # failed days of the closed loop whose noise-free glucose never went below 54 mg/dL:
    # the CGM (sensor noise) reached the G2P2C failure threshold, not the glucose itself
    rows = df[df["controller"] == "closed_loop"].reset_index(drop=True)
    bg_min = np.nanmin(results.bg_mg_dl["closed_loop"], axis=1)
    failed = rows["failure_pct"].to_numpy() > 0
    for group in ("adult", "adolescent", "child"):
        sel = failed & (rows["age_group"] == group).to_numpy()
        goal_lines.append(
            f"- {group}: {int(sel.sum())} failed days of {int((rows['age_group'] == group).sum())}"
            f" ({rows.loc[sel, 'patient'].nunique()} patients); on {int((sel & (bg_min >= 54)).sum())}"
            " of them the noise-free glucose stayed at or above 54 mg/dL (the CGM, with its "
            "noise, reached 40)."
        )
    # the goal allows no adult failure: each one with the glucose when its CGM ended the day
    step_min = results.protocol.sample_time_min
    ends = []
    for i in np.flatnonzero(failed & (rows["age_group"] == "adult").to_numpy()):
        trace = results.bg_mg_dl["closed_loop"][i]
        end = int(np.flatnonzero(~np.isfinite(trace))[0])
        minute = end * step_min
        ends.append(
            f"{rows.loc[i, 'patient']} (day {int(rows.loc[i, 'episode'])}) at "
            f"{minute // 60:02d}:{minute % 60:02d} with the noise-free glucose at "
            f"{trace[end - 1]:.0f} mg/dL"
        )
    if ends:
        goal_lines.append(
            "- the adults' failed days ended when the CGM read 40 mg/dL: "
            + "; ".join(ends)
            + ". The sensor's error there is the difference between that glucose and 40;"
            " under the G2P2C rule, which ends a day on the CGM and not on the glucose, only a"
            " controller that keeps the glucose further above 40 than the sensor's largest"
            " errors avoids such a day."
        )
    t = training
    return [
        "## Fully closed loop without meal announcement (issue 11)",
        "",
        "`closed_loop` (`metamed.dosing.closedloop`) sees only the CGM and the insulin it has "
        "delivered itself. Every 5 min it predicts the glucose from the CGM, its 20-min trend "
        f"carried a per-patient horizon ahead and the net insulin on board (oref-style), gives "
        "half the insulin that would bring the prediction to 120 mg/dL as a micro-bolus "
        "within an insulin-on-board limit (4 h of its basal), lowers the basal below target, "
        "and suspends all insulin while a low (< 100 mg/dL) is predicted within 30 min. Three "
        "parameters per patient (basal, correction factor, horizon) are adapted by a "
        "**meta-learned mapping**: each training patient's optimum is searched on the batched "
        f"simulator ({t['candidates']} candidates x {t['search_days']} training days, every "
        "patient and candidate in one batch; seeds disjoint from the evaluation's); the "
        "population parameters (0 days) are the geometric mean of the training optima of the "
        "age group; ridge regression maps summaries of a patient's first days under the "
        "population parameters (mean CGM, time below 70, insulin per day, overnight insulin "
        "rate, CGM variability) to `log(optimum / population)`.",
        "",
        f"Leave-patients-out: {results.protocol.n_folds} folds stratified by age group "
        "(2 adults, 2 adolescents, 2 children held out per fold; each fold's mapping and "
        "population parameters meta-trained on the other 24 patients only; "
        "`tests/dosing/test_closedloop.py` checks that the held-out patients' optima and "
        "their records beyond the allowed days do not move their parameters). Evaluated on "
        "the same paired patient-days as the table above, under the G2P2C failure rule (a "
        "day ends when the CGM reaches 40 or 600), and scored as the G2P2C code scores "
        "(`cgm_tir_completed_pct`: CGM in (70, 180] over completed days); `tir_pct` and the "
        "hypoglycaemia columns are on the noise-free glucose over every day. PID and "
        "basal-bolus rows come from the main batch (failure on the noise-free glucose) and "
        "`basal_bolus_g2p2c` from the G2P2C-protocol batch (meals announced 20 min early).",
        "",
        "What worked and why: meta-RL (a recurrent policy trained with PPO over the "
        "population) has not been tried yet: a PPO glucose policy is trained on millions "
        "of environment steps, far more than a search over a few parameters, and the "
        "simulator became fast enough for it (the throughput table below) only after this "
        "controller was built. A parameterised loop whose few parameters are meta-learned "
        "needs about "
        f"{t['search_patient_days']:,} simulated patient-days for the whole search.",
        "",
        md_table(pd.DataFrame(beside)),
        "",
        "Adaptation curve (days of the held-out patient's own records; 0 = population parameters):",
        "",
        md_table(pd.DataFrame(curve)),
        "",
        "Paired differences (as above; noise-free-glucose metrics, per patient, bootstrap "
        "95 % interval over patients; the PID rows failed on the noise-free glucose, the "
        "closed loop on the CGM):",
        "",
        md_table(paired_difference_table(results, pairs=CLOSED_LOOP_PAIRS)),
        "",
        "Issue 11's goal for the closed loop after "
        f"{rd} days (below 54 on the noise-free glucose; failures under the G2P2C rule), "
        "and where its failed days came from (the goal sets no bound on adolescents' and "
        "children's hypoglycaemia or failures; the table above shows both):",
        "",
        *goal_lines,
        "",
        f"Training time and compute: per-patient search {t['search_s']:.0f} s "
        f"({t['search_patient_days']:,} patient-days), records and mapping for all folds "
        f"{t['adapt_s']:.1f} s, on {t['machine']} ({t['cpus']} CPU cores, shared with other "
        "jobs; the simulator's own model threads). Written with the adapted parameters of "
        "every patient to `benchmarks/results/closed_loop_training.json` by this command.",
        "",
    ]


def closed_loop_training(record_days: int, n_folds: int, record_seed: int) -> dict:
    """Meta-train the closed loop once (the registry entry reuses it) and time it."""
    lpo = population_leave_patients_out(record_days, n_folds, record_seed)
    n_candidates = int(candidate_grid().shape[0])
    return {
        "search_s": lpo.timings_s["search_s"],
        "adapt_s": lpo.timings_s["adapt_s"],
        "candidates": n_candidates,
        "search_days": lpo.search_patient_days // (n_candidates * len(lpo.names)),
        "search_patient_days": lpo.search_patient_days,
        "machine": f"{platform.machine()} ({platform.processor() or 'cpu'})",
        "cpus": os.cpu_count(),
        "names": list(lpo.names),
        "fold": [int(f) for f in lpo.fold],
        "optima": lpo.optima.tolist(),
        "parameters": {k: v.as_dict() for k, v in lpo.parameters.items()},
    }


def build_page(
    results,
    wall_s: float,
    quick: bool,
    ablated: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    ablated_z: pd.DataFrame | None = None,
    training: dict | None = None,
    robustness: pd.DataFrame | None = None,
) -> str:
    p = results.protocol
    summary = summary_table(results)
    cols = [
        "controller",
        "age_group",
        "meal_announcement",
        "patient_days",
        "tir_pct",
        "below_70_pct",
        "below_54_pct",
        "above_180_pct",
        "above_250_pct",
        "risk_index",
        "failure_pct",
    ]
    curve = adaptation_table(results)
    errors = parameter_error_table(results)
    t = results.timings_s
    lines = [
        "# Insulin dosing results",
        "",
        "> **All patients are simulated**: the 30 UVA/Padova virtual patients of simglucose",
        "> (10 adults, 10 adolescents, 10 children). Nothing here is clinical evidence.",
        "",
        "Regenerate with `.venv/bin/python benchmarks/dosing_results.py` (prints and writes this page).",
        "" if not quick else "\n**QUICK SMOKE RUN: not the documented protocol.**\n",
        "## Protocol",
        "",
        f"- Evaluation: {p.days} one-day episodes per patient and controller, seeds "
        f"{p.seed}..{p.seed + p.days - 1}; each episode starts at midnight.",
        "- **Paired**: for each patient and evaluation day every controller sees the identical "
        "meal scenario, initial glucose and CGM-noise stream (streams keyed by (seed + day, "
        "patient), independent of the controller and of the rest of the batch; "
        "`tests/dosing/test_paired.py`). Differences between controllers are reported per "
        "patient with a bootstrap 95 % interval over patients.",
        f"- Meal scenario: `{p.scenario}` (G2P2C-style randomised meals; see "
        "`docs/dosing/environment.md`); CGM noise: "
        f"{'on' if p.sensor_noise else 'off'}; CGM sample / control step {p.sample_time_min} min;"
        " patient model at 1-minute steps.",
        "- Metrics over the full day on the noise-free (subcutaneous) glucose, as simglucose "
        "reports it (the G2P2C code scores the CGM instead; both scorings are shown beside the "
        "anchors below); a failed day (BG < 40 or > 600 mg/dL) is padded with its terminal value; "
        "`failure_pct` = % of patient-days that failed.",
        f"- Personalisation: leave-patients-out, {p.n_folds} folds stratified by age group; "
        f"{p.record_days} days of records per patient under the population therapy "
        f"(record seed {p.record_seed}); `population` = 0 days, `personalised` = "
        f"{p.record_days} days.",
        "",
        "## Controllers per age group",
        "",
        md_table(summary[cols]),
        "",
        "## Paired differences",
        "",
        "Mean over patients of the per-patient difference (controller a - controller b; each "
        "patient's metric averaged over its paired days), 95 % percentile bootstrap interval "
        "over patients (2000 resamples, seed 0; each interval draws its own resamples from "
        "its comparison, age group and metric, so it does not depend on the other rows); "
        "`patients_a_better` counts patients with "
        "higher TIR / lower hypoglycaemia or failures under a.",
        "",
        md_table(paired_difference_table(results, pairs=PAIRS)),
        "",
        "## Published anchors beside our controllers",
        "",
        md_table(ANCHORS),
        "",
        "Our controllers on the same patient-days, scored as the G2P2C code scores "
        "(`ours_cgm_tir_completed_pct`: CGM in (70, 180] over completed days) and as we score "
        "(`ours_tir_pct`: noise-free glucose, every day). The G2P2C anchor is an RL agent "
        "without meal announcement; our PID (also without) is a simple baseline, not a "
        "re-implementation of G2P2C.",
        "",
        md_table(anchor_comparison(results)),
        "",
        "Protocol of the G2P2C paper's public code (RL4H/G2P2C on GitHub; file per row) and ours:",
        "",
        md_table(pd.DataFrame(PROTOCOL_ROWS, columns=["aspect", "G2P2C code", "ours", "source"])),
        "",
    ]
    lines += anchor_reading(results)
    if training is not None:
        lines += closed_loop_section(results, training)
    lines += reading(summary)
    lines += safety_section(results, summary, ablated_z, robustness)
    if not curve.empty:
        lines += [
            "## Personalisation: adaptation curve",
            "",
            "Basal-bolus with therapy parameters estimated from 0..N days of the held-out patient's",
            "own CGM, insulin and meal records, beside the oracle (the patient's own Quest values).",
            "",
            md_table(curve),
            "",
            "Therapy-parameter error against the oracle (root-mean-square of log(estimate / Quest)):",
            "",
            md_table(errors, digits=3),
            "",
        ]
    if ablated is not None:
        lines += [
            "Ablation: the same personaliser with five record summaries added to its calibration",
            "(`TherapyPersonaliser(summary_features=True)`; same records and folds; its",
            "evaluation days are paired with the main run: identical meals and CGM noise per",
            "patient-day). Parameter error (all age groups) and outcomes after",
            f"{results.protocol.record_days} days:",
            "",
            md_table(ablated[0], digits=3),
            "",
            md_table(ablated[1]),
            "",
        ]
    lines += [
        "## Cost",
        "",
        f"- This run: {wall_s:.0f} s wall on {platform.machine()} "
        f"({platform.processor() or 'cpu'}), personalisation "
        f"{t.get('personalisation_s', 0):.0f} s, evaluation {t.get('evaluation_s', 0):.0f} s "
        f"for {int(t.get('patient_days', 0))} simulated patient-days "
        f"({t.get('patient_days', 0) / max(t.get('evaluation_s', 1e-9), 1e-9):.1f} patient-days/s, "
        "closed loop, one batched simulation per day)"
        + (
            f"; the wall time includes the closed loop's meta-training "
            f"({training['search_s']:.0f} s search, computed once per run and shared "
            "by its registry entry)."
            if training is not None
            else "."
        ),
        "",
        throughput_section(),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run (1 day, 1 record day)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    protocol = DoseProtocol(days=1, record_days=1) if args.quick else DoseProtocol()
    t0 = time.perf_counter()
    training = closed_loop_training(protocol.record_days, protocol.n_folds, protocol.record_seed)
    results = evaluate_controllers(
        CONTROLLERS, protocol=protocol, progress=lambda m: print("  ..", m)
    )
    wall = time.perf_counter() - t0
    ablated = ablation(protocol)
    ablated_z = risk_aversion_ablation(protocol)
    robustness = None if args.quick else seed_robustness(protocol)
    page = build_page(results, wall, args.quick, ablated, ablated_z, training, robustness)
    print(page)
    if not args.no_write and not args.quick:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page)
        out = ROOT / "benchmarks" / "results"
        out.mkdir(parents=True, exist_ok=True)
        results.per_patient_day.to_csv(out / "dosing_per_patient_day.csv", index=False)
        (out / "closed_loop_training.json").write_text(json.dumps(training, indent=1))
        print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
