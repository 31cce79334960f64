"""The dosing evaluation protocol and its tables.

Protocol (:class:`DoseProtocol`): every controller runs every selected virtual patient
for ``days`` one-day episodes (seeds ``seed, seed + 1, ...``) of the randomised meal
scenario with CGM noise, 5-minute CGM / control steps and the 1-minute patient model.
All controllers and patients of an episode are one batched simulation, and the
comparison is **paired**: for each patient and evaluation day every controller sees the
identical meal scenario, initial glucose and CGM-noise stream, drawn from streams keyed by
``(seed + day, patient)`` (:class:`~metamed.dosing.env.GlucoseVectorEnv` with
``paired_copies=True``), independent of the controller and of the other patients in the
batch.  Differences between controllers are therefore reported per patient with a
bootstrap confidence interval over patients
(:func:`metamed.report.dosing.paired_difference_table`, beside the HTML report; whole
runs that write files are :func:`metamed.runs.run_dose`).  Metrics
(:mod:`metamed.dosing.metrics`) are per patient-day over the
full day; a failure is a day ended by severe hypo- or hyperglycaemia, and failure rates
are the percentage of patient-days that failed.

Controllers (built from :mod:`metamed.dosing.registry`, where more can be registered):

``basal_bolus``
    Clinical basal-bolus with meal announcement and each patient's own (Quest) basal,
    carbohydrate ratio and correction factor: the oracle therapy.
``pid``
    PID feedback without meal announcement (:class:`~metamed.dosing.controllers.PIDController`).
``population``
    Basal-bolus with the age group's population-average parameters (0 days of data).
``personalised``
    Basal-bolus with parameters adapted from ``record_days`` days of the patient's own
    records by the meta-trained :class:`~metamed.dosing.personalise.TherapyPersonaliser`,
    leave-patients-out (the patient's fold never enters meta-training).  With it, the
    adaptation curve (1 .. ``record_days`` - 1 days) is evaluated as well.
``basal_bolus_g2p2c``
    The clinical basal-bolus of the G2P2C paper's code (RL4H/G2P2C): therapy from total
    daily insulin by the 500/1800 rules (:func:`~metamed.dosing.controllers.tdi_rule_therapy`),
    no correction within 3 h of a meal bolus, meals announced 20 min early, episodes ended
    by the CGM leaving (40, 600).  Evaluated in a second batch with the G2P2C protocol
    settings on the same per-patient-day meals and noise, together with
    ``basal_bolus_quest_g2p2c`` (the same protocol with the Quest therapy), which separates
    the effect of the therapy parameters from that of the protocol.

Every row also carries ``cgm_tir_pct``: time in range scored as G2P2C does (CGM readings,
70 < CGM <= 180, over the readings before a failure); G2P2C averages it over completed
(non-failed) episodes only (:func:`g2p2c_scoring_table`).

All patients are simulated (UVA/Padova / simglucose virtual patients), not real people.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metamed.dosing.controllers import Controller, StackedController
from metamed.dosing.env import GlucoseVectorEnv, rollout
from metamed.dosing.metrics import (
    METRIC_NAMES,
    glycaemic_metrics,
)
from metamed.dosing.patient import AGE_GROUPS, VirtualPatients, load_virtual_patients
from metamed.dosing.personalise import (
    CAUTIOUS,
    LeavePatientsOutResult,
    TherapyParameters,
    TherapyPersonaliser,
    leave_patients_out,
)
from metamed.dosing.registry import (
    BUILTIN_CONTROLLERS,
    ControllerContext,
    ControllerEntry,
    controller_names,
    get_controller,
)
from metamed.errors import MetamedValueError

__all__ = [
    "CONTROLLER_NAMES",
    "ANCHORS",
    "DoseProtocol",
    "DoseResults",
    "evaluate_controllers",
    "summary_table",
    "adaptation_table",
    "parameter_error_table",
    "g2p2c_scoring_table",
    "is_adaptation_curve",
]

#: The built-in controllers (see :mod:`metamed.dosing.registry` for adding one).
CONTROLLER_NAMES: tuple[str, ...] = BUILTIN_CONTROLLERS
# G2P2C's scoring (RL4H/G2P2C utils/core.py ``time_in_range``): CGM readings with
# 70 < CGM <= 180 mg/dL count as in range.
G2P2C_TIR_LOW_MG_DL = 70.0
G2P2C_TIR_HIGH_MG_DL = 180.0
# The clock of the timings and of the run-time estimate (a test swaps in CPU time, which
# a loaded shared machine disturbs far less than wall time).
_clock = time.perf_counter

# Published anchors (UVA/Padova simglucose patients, each paper's own protocol):
# G2P2C, Hettiarachchi et al., Biomedical Signal Processing and Control 2024 (RL without
# meal announcement), and the clinical basal-bolus with meal announcement reported there.
ANCHORS: pd.DataFrame = pd.DataFrame(
    [
        ("G2P2C (Hettiarachchi et al. 2024)", "adult", "no", 72.7, 0.22, 1.6),
        ("G2P2C (Hettiarachchi et al. 2024)", "adolescent", "no", 64.3, np.nan, np.nan),
        ("G2P2C (Hettiarachchi et al. 2024)", "child", "no", 63.6, np.nan, np.nan),
        ("Basal-bolus (in Hettiarachchi et al. 2024)", "adult", "yes", 71.0, np.nan, np.nan),
    ],
    columns=[
        "source",
        "age_group",
        "meal_announcement",
        "tir_pct",
        "below_54_pct",
        "failure_pct",
    ],
)

_SUMMARY_METRICS = (
    "tir_pct",
    "below_70_pct",
    "below_54_pct",
    "above_180_pct",
    "above_250_pct",
    "lbgi",
    "hbgi",
    "risk_index",
    "failure_pct",
)


@dataclass(frozen=True)
class DoseProtocol:
    """Settings of a dosing evaluation (all stated in the results).

    Attributes
    ----------
    days : int
        One-day evaluation episodes per patient and controller.
    seed : int
        Seed of the first episode; episode ``i`` uses ``seed + i``.
    sample_time_min : int
        CGM sample period = control step.
    scenario : str
        Meal scenario (``"random"``: G2P2C-style randomised meals).
    sensor_noise : bool
    record_days : int
        Days of the new patient's own records for ``personalised`` (adaptation curve
        evaluated at 0 .. record_days days).
    n_folds : int
        Leave-patients-out folds (stratified by age group).
    record_seed : int
        Seed of the record-collection simulation.
    risk_aversion : float
        How cautious ``personalised_cautious`` is: each parameter moves this many
        leave-one-out errors toward less insulin
        (:meth:`~metamed.dosing.personalise.TherapyPersonaliser.adapt`).
    """

    days: int = 10
    seed: int = 0
    sample_time_min: int = 5
    scenario: str = "random"
    sensor_noise: bool = True
    record_days: int = 3
    n_folds: int = 5
    record_seed: int = 1000
    risk_aversion: float = 1.0


@dataclass
class DoseResults:
    """Output of :func:`evaluate_controllers`.

    Attributes
    ----------
    per_patient_day : pandas.DataFrame
        One row per (controller, patient, episode): metrics of that patient-day.
    bg_mg_dl : dict of str to numpy.ndarray
        Noise-free glucose traces per controller, shape (n_patient_days, steps)
        (NaN after a failure), for the percentile bands.
    protocol : DoseProtocol
    personalisation : LeavePatientsOutResult or None
    timings_s : dict of str to float
        Wall time of the phases and the number of simulated patient-days.
    meal_announcement : dict of str to str
        What each controller setting saw of the meals (from its registry entry).
    descriptions : dict of str to str
        What each controller setting is (its registry entry's description).
    """

    per_patient_day: pd.DataFrame
    bg_mg_dl: dict[str, np.ndarray]
    protocol: DoseProtocol
    personalisation: LeavePatientsOutResult | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    meal_announcement: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


def _check_controllers(controllers: Sequence[str]) -> list[ControllerEntry]:
    names = list(dict.fromkeys(controllers))
    if not names:
        raise MetamedValueError(
            f"No controller selected; choose from {', '.join(controller_names())}."
        )
    return [get_controller(name) for name in names]


def _resolve(patients: VirtualPatients | str | Sequence[str] | None) -> VirtualPatients:
    if isinstance(patients, VirtualPatients):
        vp = patients
    elif isinstance(patients, str) or patients is None:
        vp = load_virtual_patients(patients)
    else:
        vp = load_virtual_patients(list(patients))
    # a patient listed twice would be simulated twice and weigh double in every mean
    repeated = [name for name, count in Counter(vp.names).items() if count > 1]
    if repeated:
        raise MetamedValueError(
            f"Virtual patient(s) {', '.join(repeated)} selected twice (directly or through "
            "their age group); each patient is evaluated once per day. List each patient once."
        )
    return vp


def _take(tp: TherapyParameters, names: Sequence[str], order: Sequence[str]) -> TherapyParameters:
    idx = [list(order).index(n) for n in names]
    return TherapyParameters(
        np.asarray(tp.basal_u_per_h)[idx],
        np.asarray(tp.carb_ratio_g_per_u)[idx],
        np.asarray(tp.correction_factor_mg_dl_per_u)[idx],
    )


def evaluate_controllers(
    controllers: Sequence[str] = CONTROLLER_NAMES,
    patients: VirtualPatients | str | Sequence[str] | None = None,
    protocol: DoseProtocol | None = None,
    progress: Callable[[str], None] | None = None,
    personaliser: TherapyPersonaliser | None = None,
    advance: Callable[[str, int, int], None] | None = None,
) -> DoseResults:
    """Run the dosing protocol for the named controllers on the selected patients.

    Parameters
    ----------
    controllers : sequence of str
        Names registered in :mod:`metamed.dosing.registry` (the built-ins:
        :data:`CONTROLLER_NAMES`).
    patients : VirtualPatients, str, sequence of str or None
        Age groups and/or names (each patient at most once), or None for all 30.
    protocol : DoseProtocol, optional
    progress : callable, optional
        Receives one-line messages: the phases and, for runs of more than one day, the
        estimated evaluation time (timed on a short trial before the evaluation starts).
    personaliser : TherapyPersonaliser, optional
        Unfitted; sets the personalisation hyperparameters (default
        :class:`~metamed.dosing.personalise.TherapyPersonaliser()`).
    advance : callable, optional
        ``advance("days", done, total)`` after each evaluation day (drives a progress
        bar; the caller decides how often to show it).
    """
    protocol = protocol or DoseProtocol()
    if protocol.days < 1 or protocol.record_days < 1:
        raise MetamedValueError(
            f"days and record_days must be >= 1; received {protocol.days}, {protocol.record_days}."
        )
    entries = _check_controllers(controllers)
    vp = _resolve(patients)
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    lpo = None
    therapy: dict[str, TherapyParameters] = {}
    if any(entry.needs_personalisation for entry in entries):
        say(
            f"personalisation: meta-training on held-out folds, {protocol.record_days} "
            "record days per patient"
        )
        t0 = _clock()
        lpo = leave_patients_out(
            days_of_data=tuple(range(protocol.record_days + 1)),
            n_folds=protocol.n_folds,
            seed=protocol.record_seed,
            sample_time_min=protocol.sample_time_min,
            personaliser=personaliser,
            risk_aversion=protocol.risk_aversion,
        )
        timings["personalisation_s"] = _clock() - t0
        therapy = {key: _take(tp, vp.names, lpo.names) for key, tp in lpo.parameters.items()}
    context = ControllerContext(vp, protocol.record_days, therapy)
    # entries with the same environment options share one batched simulation
    batches: dict[tuple, list[tuple[str, Controller]]] = {}
    announced: dict[str, str] = {}
    described: dict[str, str] = {}
    for entry in entries:
        key = tuple(sorted(entry.env_options.items()))
        for label, controller in entry.build(context):
            if label in announced:
                raise MetamedValueError(
                    f"Two controller settings are labelled '{label}'; every setting of a run "
                    "needs its own label (check the registered controllers' build functions)."
                )
            announced[label] = entry.meal_announcement
            described[label] = entry.description
            batches.setdefault(key, []).append((label, controller))
    n = len(vp)
    groups: list[tuple[list[tuple[str, Controller]], GlucoseVectorEnv]] = []
    for key, group_settings in batches.items():
        env = GlucoseVectorEnv(
            vp.select(list(vp.names) * len(group_settings)),
            days=1.0,
            sample_time_min=protocol.sample_time_min,
            scenario=protocol.scenario,
            sensor_noise=protocol.sensor_noise,
            paired_copies=True,
            **dict(key),
        )
        groups.append((group_settings, env))
    all_settings = [label for group_settings, _ in groups for label, _ in group_settings]
    if protocol.days > 1:
        estimate_s = protocol.days * _day_seconds(groups, protocol.seed)
        say(
            f"evaluation: {protocol.days} days x {len(all_settings)} settings x {n} patients, "
            f"estimated {_duration(estimate_s)} (timed on a {_TRIAL_STEPS}-step trial)"
        )
    else:
        say(f"evaluation: 1 day x {len(all_settings)} settings x {n} patients")
    rows = []
    traces: dict[str, list[np.ndarray]] = {label: [] for label in all_settings}
    n_rows = 0
    t0 = _clock()
    for episode in range(protocol.days):
        for group_settings, env in groups:
            stacked = StackedController([c for _, c in group_settings])
            sim = rollout(stacked, env, seed=protocol.seed + episode)
            n_rows += env.num_envs
            m = glycaemic_metrics(sim.bg_mg_dl, failed=sim.failed)
            m["cgm_tir_pct"] = _g2p2c_tir_pct(sim.cgm_mg_dl)
            for s_idx, (label, _) in enumerate(group_settings):
                sl = slice(s_idx * n, (s_idx + 1) * n)
                traces[label].append(sim.bg_mg_dl[sl])
                for i in range(n):
                    row = {
                        "controller": label,
                        "patient": vp.names[i],
                        "age_group": vp.age_group[i],
                        "episode": episode,
                    }
                    row.update({k: float(m[k][sl][i]) for k in (*METRIC_NAMES, "cgm_tir_pct")})
                    rows.append(row)
        if advance is not None:
            advance("days", episode + 1, protocol.days)
    timings["evaluation_s"] = _clock() - t0
    timings["patient_days"] = float(n_rows)
    frame = pd.DataFrame(rows)
    frame["failure_pct"] = 100.0 * frame.pop("failure")
    return DoseResults(
        per_patient_day=frame,
        bg_mg_dl={k: np.concatenate(v, axis=0) for k, v in traces.items()},
        protocol=protocol,
        personalisation=lpo,
        timings_s=timings,
        meal_announcement=announced,
        descriptions=described,
    )


# Control steps of the trial that times a day before a long evaluation (2 h at 5 min).
_TRIAL_STEPS = 24


def _day_seconds(
    groups: list[tuple[list[tuple[str, Controller]], GlucoseVectorEnv]], seed: int
) -> float:
    """Wall time of one evaluation day, from a short trial of every batch.

    A day costs one reset (meal schedules, streams) plus its control steps; both are
    timed, so the extrapolation does not multiply the reset by the number of steps.  The
    trial leaves no trace: every evaluation day resets the environment from its seed.
    """
    total = 0.0
    for group_settings, env in groups:
        stacked = StackedController([c for _, c in group_settings])
        steps = min(_TRIAL_STEPS, env.horizon_steps)
        # the first step loads (or, on a fresh install, compiles) the compiled kernel,
        # once per process: untimed, or a first run's estimate came out 100 times too long
        rollout(stacked, env, seed=seed, steps=1)
        t0 = _clock()
        env.reset(seed=seed)
        reset_s = _clock() - t0
        t0 = _clock()
        rollout(stacked, env, seed=seed, steps=steps)
        step_s = max(_clock() - t0 - reset_s, 0.0) / steps
        total += reset_s + step_s * env.horizon_steps
    return total


def _duration(seconds: float) -> str:
    # three decimals under a second: a small run takes hundredths of a second now, and
    # "0.0 s" would say it takes nothing
    if seconds < 1:
        return f"{max(seconds, 0.001):.3f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _g2p2c_tir_pct(cgm_mg_dl: np.ndarray) -> np.ndarray:
    """Percentage of the available CGM readings in (70, 180] mg/dL, per row (G2P2C)."""
    valid = np.isfinite(cgm_mg_dl)
    in_range = valid & (cgm_mg_dl > G2P2C_TIR_LOW_MG_DL) & (cgm_mg_dl <= G2P2C_TIR_HIGH_MG_DL)
    return 100.0 * in_range.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def is_adaptation_curve(labels: pd.Series) -> pd.Series:
    """Which controller labels are points of the adaptation curve (``personalised_2d``,
    ``personalised_1d+plgs``): shown in the curve's table, not among the controllers."""
    return labels.str.fullmatch(r"(personalised|closed_loop)_\d+d(\+plgs)?")


def g2p2c_scoring_table(results: DoseResults) -> pd.DataFrame:
    """Metrics scored as the G2P2C code does, per controller and age group.

    ``cgm_tir_completed_pct``: mean of ``cgm_tir_pct`` over patient-days that did *not*
    fail (G2P2C's ``complete_results``); ``failure_pct`` over all patient-days;
    ``tir_pct`` (ours: noise-free glucose, every day, failures padded) for comparison.
    """
    df = results.per_patient_day
    df = df[~is_adaptation_curve(df["controller"])].copy()
    done = df[df["failure_pct"] == 0]
    out = []
    for group in (*AGE_GROUPS, "all"):
        sel = df if group == "all" else df[df["age_group"] == group]
        sel_done = done if group == "all" else done[done["age_group"] == group]
        for ctrl in dict.fromkeys(df["controller"]):
            rows = sel[sel["controller"] == ctrl]
            if rows.empty:
                continue
            rows_done = sel_done[sel_done["controller"] == ctrl]
            out.append(
                {
                    "controller": ctrl,
                    "age_group": group,
                    "meal_announcement": results.meal_announcement.get(ctrl, "yes"),
                    "cgm_tir_completed_pct": float(rows_done["cgm_tir_pct"].mean())
                    if len(rows_done)
                    else float("nan"),
                    "tir_pct": float(rows["tir_pct"].mean()),
                    "failure_pct": float(rows["failure_pct"].mean()),
                }
            )
    return pd.DataFrame(out)


def summary_table(results: DoseResults, include_curve: bool = False) -> pd.DataFrame:
    """Mean metrics per controller and age group (over patients and days), plus 'all'."""
    df = results.per_patient_day
    if not include_curve:
        df = df[~is_adaptation_curve(df["controller"])]
    by_group = df.groupby(["controller", "age_group"], sort=False)[list(_SUMMARY_METRICS)].mean()
    overall = df.groupby("controller", sort=False)[list(_SUMMARY_METRICS)].mean()
    overall["age_group"] = "all"
    out = pd.concat([by_group.reset_index(), overall.reset_index()], ignore_index=True)
    order = {g: i for i, g in enumerate((*AGE_GROUPS, "all"))}
    ctrl_order = {c: i for i, c in enumerate(dict.fromkeys(df["controller"]))}
    out = out.sort_values(
        ["controller", "age_group"],
        key=lambda s: s.map(ctrl_order if s.name == "controller" else order),
    )
    out.insert(
        2,
        "meal_announcement",
        out["controller"].map(lambda c: results.meal_announcement.get(c, "yes")),
    )
    n_days = df.groupby(["controller", "age_group"]).size()
    out.insert(
        3,
        "patient_days",
        [
            int(n_days.loc[c].sum()) if g == "all" else int(n_days.loc[(c, g)])
            for c, g in zip(out["controller"], out["age_group"], strict=True)
        ],
    )
    return out.reset_index(drop=True)


def adaptation_table(results: DoseResults) -> pd.DataFrame:
    """Adaptation curve: metrics per age group after 0 .. record_days days, and oracle."""
    df = results.per_patient_day
    rd = results.protocol.record_days
    label = {"population": 0, "personalised": rd, "basal_bolus": "oracle (Quest)"}
    label.update({f"personalised_{d}d": d for d in range(1, rd)})
    df = df[df["controller"].isin(label)].copy()
    if not df["controller"].isin(set(label) - {"basal_bolus"}).any():
        # the oracle alone is not an adaptation curve (and would draw an empty plot)
        return pd.DataFrame()
    df["days_of_data"] = df["controller"].map(label).astype(str)
    metrics = ["tir_pct", "below_54_pct", "above_250_pct", "risk_index", "failure_pct"]
    by_group = df.groupby(["days_of_data", "age_group"])[metrics].mean().reset_index()
    overall = df.groupby("days_of_data")[metrics].mean().reset_index()
    overall["age_group"] = "all"
    out = pd.concat([by_group, overall], ignore_index=True)
    order = {str(d): d for d in range(rd + 1)}
    out["_o"] = out["days_of_data"].map(lambda d: order.get(d, rd + 1))
    out["_g"] = out["age_group"].map({g: i for i, g in enumerate((*AGE_GROUPS, "all"))})
    return out.sort_values(["_g", "_o"]).drop(columns=["_o", "_g"]).reset_index(drop=True)


def parameter_error_table(results: DoseResults) -> pd.DataFrame:
    """Root-mean-square log error of the estimated therapy parameters vs Quest, per days."""
    lpo = results.personalisation
    if lpo is None:
        return pd.DataFrame()
    oracle = lpo.parameters["oracle"]
    rows = []
    groups = np.asarray(lpo.age_groups)
    for key, tp in lpo.parameters.items():
        if key == "oracle" or key.endswith(CAUTIOUS):
            continue  # the cautious choice is biased on purpose: not an estimate
        for g in (*AGE_GROUPS, "all"):
            sel = np.ones(groups.size, bool) if g == "all" else groups == g
            row: dict[str, str | float] = {"days_of_data": key.rstrip("d"), "age_group": g}
            for attr, short in (
                ("carb_ratio_g_per_u", "cr"),
                ("correction_factor_mg_dl_per_u", "cf"),
                ("basal_u_per_h", "basal"),
            ):
                err = np.log(
                    np.asarray(getattr(tp, attr))[sel] / np.asarray(getattr(oracle, attr))[sel]
                )
                row[f"{short}_rmse_log"] = float(np.sqrt(np.mean(err**2)))
            rows.append(row)
    return pd.DataFrame(rows)
