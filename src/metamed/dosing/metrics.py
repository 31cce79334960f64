"""Glycaemic outcome metrics for dosing experiments, vectorised over patients.

Every metric is computed over the **full intended horizon**.  A simulated episode that
ends early (the patient hit a failure threshold, see :data:`FAILURE_LOW_MG_DL` and
:data:`FAILURE_HIGH_MG_DL`) is padded with its **terminal glucose value** up to the
horizon before any metric is taken.  Why this choice:

* Truncating the trace would flatter a failing controller: a patient that crashes into
  severe hypoglycaemia after four hours would be scored only on the four good hours.
* Padding with the terminal value is the conservative, physiologically plausible
  continuation (without rescue the patient stays where the failure left them); it makes
  the remaining time count as below 54 mg/dL (hypo failure) or above 250 mg/dL (hyper
  failure), and the risk indices see a high risk for the whole remainder, so a failure
  is always worse than a survivable bad day.
* Counting the remainder as a fixed "out of range" label would need an arbitrary risk
  value for LBGI/HBGI; the terminal value gives one consistent trace for all metrics.

Trace convention: ``glucose_mg_dl`` has shape ``(n_patients, n_samples)`` on a regular
time grid; samples after a patient's episode ended are ``NaN`` (or the array is shorter
than ``horizon_samples``).  Leading NaNs are not allowed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError

__all__ = [
    "TARGET_LOW_MG_DL",
    "TARGET_HIGH_MG_DL",
    "HYPO_LEVEL2_MG_DL",
    "HYPER_LEVEL2_MG_DL",
    "FAILURE_LOW_MG_DL",
    "FAILURE_HIGH_MG_DL",
    "RISK_GLUCOSE_FLOOR_MG_DL",
    "METRIC_NAMES",
    "METRIC_LABELS",
    "bg_risk",
    "pad_to_horizon",
    "glycaemic_metrics",
    "metrics_frame",
]

# International consensus on time in range (Battelino et al., Diabetes Care 2019;42:1593-1603):
# target range 70-180 mg/dL; level 1 hypo < 70, level 2 hypo < 54; level 1 hyper > 180,
# level 2 hyper > 250 mg/dL.
TARGET_LOW_MG_DL: float = 70.0
TARGET_HIGH_MG_DL: float = 180.0
HYPO_LEVEL2_MG_DL: float = 54.0
HYPER_LEVEL2_MG_DL: float = 250.0

# Episode-ending (failure) thresholds used by G2P2C (Hettiarachchi et al., Biomedical Signal
# Processing and Control 2024) for the UVA/Padova simulator: severe hypoglycaemia below 40 mg/dL,
# severe hyperglycaemia above 600 mg/dL.  The environment terminates on the same values.
FAILURE_LOW_MG_DL: float = 40.0
FAILURE_HIGH_MG_DL: float = 600.0

# The risk function takes ln(BG); clamp at 1 mg/dL so a (non-physiological) zero or negative
# reading from a noisy sensor cannot produce NaN/inf.  simglucose applies the same floor.
RISK_GLUCOSE_FLOOR_MG_DL: float = 1.0

# Kovatchev et al., "Symmetrization of the blood glucose measurement scale and its
# applications", Diabetes Care 1997;20:1655-1658, and Kovatchev et al., "Evaluation of a
# new measure of blood glucose variability in diabetes" (LBGI/HBGI), Diabetes Care
# 2006;29:2433-2438:  f(BG) = 1.509 * (ln(BG)^1.084 - 5.381),  r(BG) = 10 f(BG)^2.
_RISK_SCALE = 1.509
_RISK_EXPONENT = 1.084
_RISK_OFFSET = 5.381
_RISK_GAIN = 10.0
#: ``(scale, exponent, offset, gain)`` of the risk above, for compiled code that
#: evaluates it inline (metamed.dosing._kernel.env_step).
KOVATCHEV_RISK = (_RISK_SCALE, _RISK_EXPONENT, _RISK_OFFSET, _RISK_GAIN)

METRIC_NAMES: tuple[str, ...] = (
    "tir_pct",
    "below_70_pct",
    "below_54_pct",
    "above_180_pct",
    "above_250_pct",
    "mean_glucose_mg_dl",
    "lbgi",
    "hbgi",
    "risk_index",
    "failure",
)


#: Clinical names of the per-patient-day metrics (and ``failure_pct``, the share of days
#: that ended in a failure), for tables and reports; the keys stay the column names.
METRIC_LABELS: dict[str, str] = {
    "tir_pct": "time in range 70-180 mg/dL (%)",
    "below_70_pct": "time below 70 mg/dL (%)",
    "below_54_pct": "time below 54 mg/dL (%)",
    "above_180_pct": "time above 180 mg/dL (%)",
    "above_250_pct": "time above 250 mg/dL (%)",
    "mean_glucose_mg_dl": "mean glucose (mg/dL)",
    "lbgi": "low blood glucose index (LBGI)",
    "hbgi": "high blood glucose index (HBGI)",
    "risk_index": "risk index (LBGI + HBGI)",
    "failure_pct": "days ended by glucose < 40 or > 600 mg/dL (%)",
    "cgm_tir_pct": "time in range 70-180 mg/dL on the CGM (%)",
}


def bg_risk(glucose_mg_dl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kovatchev blood-glucose risk split into its low and high branches.

    Parameters
    ----------
    glucose_mg_dl : array_like
        Glucose values in mg/dL, any shape.

    Returns
    -------
    low_risk, high_risk : numpy.ndarray
        ``10 f(BG)^2`` where ``f(BG) < 0`` (low) or ``f(BG) > 0`` (high), zero elsewhere;
        ``f`` is zero at about 112.5 mg/dL.
    """
    g = np.maximum(np.asarray(glucose_mg_dl, dtype=float), RISK_GLUCOSE_FLOOR_MG_DL)
    f = _RISK_SCALE * (np.log(g) ** _RISK_EXPONENT - _RISK_OFFSET)
    risk = _RISK_GAIN * f**2
    return np.where(f < 0, risk, 0.0), np.where(f > 0, risk, 0.0)


def pad_to_horizon(
    glucose_mg_dl: np.ndarray, horizon_samples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pad each trace after its last valid sample with that terminal value.

    Parameters
    ----------
    glucose_mg_dl : array_like, shape (n_patients, n_samples)
        Glucose traces; trailing ``NaN`` marks samples after the episode ended.
    horizon_samples : int, optional
        Intended number of samples; defaults to ``n_samples``.  Must be ``>= n_samples``.

    Returns
    -------
    padded : numpy.ndarray, shape (n_patients, horizon_samples)
    ended_early : numpy.ndarray of bool, shape (n_patients,)
        True where the trace did not cover the whole horizon.
    """
    g = np.asarray(glucose_mg_dl, dtype=float)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2:
        raise MetamedValueError(
            f"glucose_mg_dl must have shape (n_patients, n_samples); received shape {g.shape}. "
            "Stack one row per patient."
        )
    n_patients, n_samples = g.shape
    horizon = n_samples if horizon_samples is None else int(horizon_samples)
    if horizon < n_samples or horizon < 1:
        raise MetamedValueError(
            f"horizon_samples must be >= the trace length ({n_samples}) and >= 1; received "
            f"{horizon_samples}. Pass the intended episode length in samples."
        )
    valid = np.isfinite(g)
    # number of valid samples = index of the first NaN (valid samples must be a prefix)
    n_valid = np.where(valid.all(axis=1), n_samples, np.argmin(valid, axis=1))
    if np.any(n_valid == 0):
        bad = np.flatnonzero(n_valid == 0).tolist()
        raise MetamedValueError(
            f"Patients {bad} have no valid first glucose sample; every trace must start with a "
            "finite value (NaN is allowed only after the episode ended)."
        )
    prefix = np.arange(n_samples)[None, :] < n_valid[:, None]
    if np.any(valid & ~prefix):
        raise MetamedValueError(
            "A finite glucose value follows a NaN; NaN may only mark the samples after an "
            "episode ended. Check the trace assembly (no gaps inside an episode)."
        )
    terminal = g[np.arange(n_patients), n_valid - 1]
    padded = np.empty((n_patients, horizon))
    padded[:, :n_samples] = np.where(prefix, g, terminal[:, None])
    padded[:, n_samples:] = terminal[:, None]
    return padded, n_valid < horizon


def glycaemic_metrics(
    glucose_mg_dl: np.ndarray,
    horizon_samples: int | None = None,
    failed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-patient glycaemic outcome metrics over the full intended horizon.

    Parameters
    ----------
    glucose_mg_dl : array_like, shape (n_patients, n_samples)
        Glucose traces (mg/dL) on a regular grid; trailing ``NaN`` after an early end.
    horizon_samples : int, optional
        Intended episode length in samples (defaults to ``n_samples``); shorter traces
        are padded with their terminal value (see the module docstring).
    failed : array_like of bool, shape (n_patients,), optional
        Which episodes ended by a failure (severe hypo/hyperglycaemia).  By default a
        patient failed when the trace ends before the horizon or when any sample crosses
        :data:`FAILURE_LOW_MG_DL` / :data:`FAILURE_HIGH_MG_DL`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys :data:`METRIC_NAMES`, each of shape ``(n_patients,)``: percentages of time in
        70-180, below 70 and 54, above 180 and 250 mg/dL; mean glucose; LBGI, HBGI and risk
        index (LBGI + HBGI, Kovatchev et al.); ``failure`` as 0.0/1.0.
    """
    g, ended_early = pad_to_horizon(glucose_mg_dl, horizon_samples)
    if failed is None:
        crossed = np.any((g < FAILURE_LOW_MG_DL) | (g > FAILURE_HIGH_MG_DL), axis=1)
        failure = ended_early | crossed
    else:
        failure = np.asarray(failed, dtype=bool).reshape(-1)
        if failure.shape[0] != g.shape[0]:
            raise MetamedValueError(
                f"failed must have one entry per patient ({g.shape[0]}); received "
                f"{failure.shape[0]}."
            )
    low, high = bg_risk(g)
    lbgi = low.mean(axis=1)
    hbgi = high.mean(axis=1)
    return {
        "tir_pct": 100.0 * np.mean((g >= TARGET_LOW_MG_DL) & (g <= TARGET_HIGH_MG_DL), axis=1),
        "below_70_pct": 100.0 * np.mean(g < TARGET_LOW_MG_DL, axis=1),
        "below_54_pct": 100.0 * np.mean(g < HYPO_LEVEL2_MG_DL, axis=1),
        "above_180_pct": 100.0 * np.mean(g > TARGET_HIGH_MG_DL, axis=1),
        "above_250_pct": 100.0 * np.mean(g > HYPER_LEVEL2_MG_DL, axis=1),
        "mean_glucose_mg_dl": g.mean(axis=1),
        "lbgi": lbgi,
        "hbgi": hbgi,
        "risk_index": lbgi + hbgi,
        "failure": failure.astype(float),
    }


def metrics_frame(
    glucose_mg_dl: np.ndarray,
    patient_ids: list[str],
    horizon_samples: int | None = None,
    failed: np.ndarray | None = None,
    **columns: Any,
) -> pd.DataFrame:
    """:func:`glycaemic_metrics` as a tidy per-patient table.

    Extra keyword arguments become constant (or per-patient, if list-like of matching
    length) columns, e.g. ``controller="basal_bolus", age_group=[...]``.
    """
    m = glycaemic_metrics(glucose_mg_dl, horizon_samples, failed)
    n = len(next(iter(m.values())))
    if len(patient_ids) != n:
        raise MetamedValueError(
            f"patient_ids has {len(patient_ids)} entries but the traces have {n} patients."
        )
    frame = pd.DataFrame({"patient": list(patient_ids), **m})
    for key, value in columns.items():
        frame[key] = value
    return frame
