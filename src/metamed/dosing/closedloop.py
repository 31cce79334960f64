"""A fully closed loop without meal announcement, meta-learned and adapted to the patient.

The controller (:class:`ClosedLoopController`) sees only the CGM and the insulin it has
delivered itself.  Every 5 minutes it predicts where glucose is heading, in the manner of
the open-source OpenAPS "oref" algorithm (its "unannounced meal" mode): the CGM, plus its
recent trend carried ``horizon_min`` ahead (a rising trend is how an unannounced meal
shows), minus what the net insulin on board will still lower it by (IOB x correction
factor).  If that prediction is above target it delivers half the insulin that would
bring it to target as a micro-bolus, within an insulin-on-board limit; if below, it
lowers the basal rate; and a low-glucose suspend stops all insulin while the CGM trend
predicts glucose below 100 mg/dL within 30 min, or the insulin on board would take it
there.

Three parameters per patient: basal rate, correction factor and prediction horizon.
Adaptation is meta-learned (:class:`ClosedLoopAdapter`):

1. **Per-patient optima (training patients only).**  Every training patient runs a grid of
   parameter candidates on the batched simulator (all patients x candidates in one
   batch, training-only seeds); its optimum maximises time in range with penalties for
   time below 54 mg/dL and for failed days.
2. **Population parameters (0 days).**  The geometric mean of the training optima of the
   age group.
3. **Mapping from records to parameters.**  Each training patient also runs ``d`` days
   under the population parameters (what a new patient's first days would be);
   summaries of those CGM and insulin records (mean CGM, time below 70, the insulin the
   loop delivered per day, overnight insulin rate, CGM variability) are regressed by
   ridge (penalty by exact leave-one-out error) onto ``log(optimum / population)``.

A held-out patient runs its first days under the population parameters; the mapping
turns those records into its parameters.  Nothing of the held-out patient enters steps
1-3, and nothing of its records beyond the allowed days enters the mapping
(``tests/dosing/test_closedloop.py``).  All patients are simulated, not real people.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from metamed.dosing.controllers import (
    PLGS_HORIZON_MIN,
    ControlInput,
    Controller,
)
from metamed.dosing.env import IOB_PEAK_MIN, GlucoseVectorEnv, rollout
from metamed.dosing.metrics import glycaemic_metrics
from metamed.dosing.patient import VirtualPatients, load_virtual_patients
from metamed.dosing.personalise import _ridge_loo, stratified_folds  # the same ridge
from metamed.errors import MetamedValueError, NotFittedError

__all__ = [
    "ClosedLoopController",
    "ClosedLoopParameters",
    "ClosedLoopAdapter",
    "closed_loop_score",
    "record_features",
    "FEATURE_NAMES",
    "candidate_grid",
    "weight_start",
    "simulate_days",
    "search_optima",
    "ClosedLoopLPOResult",
    "leave_patients_out_closed_loop",
    "population_leave_patients_out",
]

# Set point of the predicted glucose (the usual closed-loop target, cf. PID_TARGET_MG_DL).
CLOSED_LOOP_TARGET_MG_DL: float = 120.0
# Fraction of the insulin requirement given as one micro-bolus (oref1's SMB gives half,
# so the next reading can correct a wrong prediction).
MICRO_BOLUS_FRACTION: float = 0.5
# Insulin on board above basal allowed, in hours of the patient's basal rate (oref's
# max IOB is set the same way, as a multiple of the basal rate).
MAX_IOB_BASAL_HOURS: float = 4.0
# The loop's own suspend threshold, above a pump's 80 mg/dL (PLGS_THRESHOLD_MG_DL): the
# G2P2C protocol fails a day on the *CGM* reaching 40, and sensor noise at a glucose held
# near 80 reached it on days where the glucose itself stayed above 54 (first version,
# leave-patients-out adults: 3 % failed days at 0.00 % below 54).
SUSPEND_BELOW_MG_DL: float = 100.0
# Readings of the trend fit (the latest 20 minutes at a 5-min sample time).
_TREND_READINGS = 5
# A rising trend is believed at most this much (mg/dL/min): sensor noise and
# compression artefacts should not turn into large boluses.
_MAX_RISE_MG_DL_PER_MIN = 4.0


def _trend(readings: list[np.ndarray], sample_time_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares level at the latest reading and slope (mg/dL/min), per patient."""
    y = np.asarray(readings)
    k = y.shape[0]
    if k < 2:
        return y[-1], np.zeros(y.shape[1])
    t = (np.arange(k) - (k - 1)) * sample_time_min
    tc = t - t.mean()
    slope = tc @ (y - y.mean(axis=0)) / (tc @ tc)
    return y.mean(axis=0) - slope * t.mean(), slope


@dataclass(frozen=True)
class ClosedLoopParameters:
    """Per-patient parameters of :class:`ClosedLoopController` (arrays of one length)."""

    basal_u_per_h: np.ndarray
    correction_factor_mg_dl_per_u: np.ndarray
    horizon_min: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.stack(
            [self.basal_u_per_h, self.correction_factor_mg_dl_per_u, self.horizon_min], axis=1
        )

    @classmethod
    def from_array(cls, arr: np.ndarray) -> ClosedLoopParameters:
        arr = np.asarray(arr, dtype=float)
        return cls(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "basal_u_per_h": [float(v) for v in self.basal_u_per_h],
            "correction_factor_mg_dl_per_u": [float(v) for v in self.correction_factor_mg_dl_per_u],
            "horizon_min": [float(v) for v in self.horizon_min],
        }


class ClosedLoopController(Controller):
    """Fully closed loop: CGM and its own insulin only, no meal announcement.

    Parameters
    ----------
    params : ClosedLoopParameters
        Basal rate (U/h), correction factor (mg/dL per U) and trend horizon (min) per
        patient.
    target_mg_dl : float
        Set point of the predicted glucose.
    """

    name = "closed_loop"
    uses_meal_announcement = False

    def __init__(
        self, params: ClosedLoopParameters, target_mg_dl: float = CLOSED_LOOP_TARGET_MG_DL
    ) -> None:
        arr = np.asarray(params.as_array(), dtype=float)
        if (
            arr.ndim != 2
            or not np.all(np.isfinite(arr))
            or np.any(arr[:, :2] <= 0)
            or np.any(arr[:, 2] < 0)
        ):
            raise MetamedValueError(
                "ClosedLoopController needs finite basal rates and correction factors > 0 and "
                f"horizons >= 0 per patient; received {params!r}."
            )
        self.basal_u_per_h = arr[:, 0].copy()
        self.correction_factor_mg_dl_per_u = arr[:, 1].copy()
        self.horizon_min = arr[:, 2].copy()
        self.target_mg_dl = float(target_mg_dl)
        self.reset()

    @property
    def n_patients(self) -> int:
        return self.basal_u_per_h.shape[0]

    def reset(self) -> None:
        self._readings: list[np.ndarray] = []
        # net insulin (above basal) in two compartments: IOB = x1 + x2 falls as
        # (1 + t/tau) exp(-t/tau) after a bolus, the t exp(-t/tau) action curve's remainder
        self._x1 = np.zeros(self.n_patients)
        self._x2 = np.zeros(self.n_patients)

    @property
    def insulin_on_board_u(self) -> np.ndarray:
        """Net insulin on board (above the basal rate; negative after a suspension), U."""
        return self._x1 + self._x2

    def act(self, inp: ControlInput) -> np.ndarray:
        self._check(inp)
        dt_min = inp.sample_time_min
        dt_h = dt_min / 60.0
        self._readings.append(np.asarray(inp.cgm_mg_dl, dtype=float))
        del self._readings[:-_TREND_READINGS]
        level, slope = _trend(self._readings, dt_min)
        cf = self.correction_factor_mg_dl_per_u
        iob = self.insulin_on_board_u
        rise = np.clip(slope, None, _MAX_RISE_MG_DL_PER_MIN)
        eventual = level + rise * self.horizon_min - iob * cf
        required_u = (eventual - self.target_mg_dl) / cf
        room_u = MAX_IOB_BASAL_HOURS * self.basal_u_per_h - iob
        bolus_u = np.clip(MICRO_BOLUS_FRACTION * required_u, 0.0, np.maximum(room_u, 0.0))
        # below target: withhold the deficit from the basal over the next 30 minutes
        low_rate = np.maximum(self.basal_u_per_h + required_u / 0.5, 0.0)
        rate = np.where(required_u > 0, self.basal_u_per_h + bolus_u / dt_h, low_rate)
        # suspend when the trend predicts a low within 30 min (as a pump's PLGS), or when
        # the insulin already on board would take the glucose there without more carbs
        suspend = (level + slope * PLGS_HORIZON_MIN < SUSPEND_BELOW_MG_DL) | (
            level - iob * cf < SUSPEND_BELOW_MG_DL
        )
        rate = np.where(suspend, 0.0, rate)
        # the delivered net insulin enters the on-board compartments
        decay = np.exp(-dt_min / IOB_PEAK_MIN)
        net_u = (rate - self.basal_u_per_h) * dt_h
        x1 = self._x1 * decay + net_u
        self._x2 = self._x2 * decay + self._x1 * (dt_min / IOB_PEAK_MIN) * decay
        self._x1 = x1
        return rate


def closed_loop_score(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """What the per-patient search maximises, per row of per-day ``metrics`` (n, days):
    mean time in range, each % below 70 mg/dL counting 5 % in range, each % below 54
    another 10 %, and each failed day 300 % (a failed day is a severe event the goal
    allows none of; the search days are few, so a margin against lows is rewarded)."""
    return (
        metrics["tir_pct"].mean(axis=1)
        - 5.0 * metrics["below_70_pct"].mean(axis=1)
        - 10.0 * metrics["below_54_pct"].mean(axis=1)
        - 300.0 * metrics["failure"].mean(axis=1)
    )


#: Record summaries the mapping regresses on (see :func:`record_features`).
FEATURE_NAMES: tuple[str, ...] = (
    "log_mean_cgm",
    "below_70_frac",
    "log_insulin_per_day",
    "log_night_insulin_rate",
    "cgm_sd_over_mean",
)
# Night window of the overnight insulin rate (00:00-06:00: meals of the G2P2C scenario
# start at 07:00 at the earliest, so the loop's insulin then is its basal need).
_NIGHT_HOURS = (0.0, 6.0)


def record_features(
    cgm_mg_dl: np.ndarray, insulin_u: np.ndarray, sample_time_min: float
) -> np.ndarray:
    """Summaries of CGM and the loop's own insulin, shape (n_patients, len(FEATURE_NAMES)).

    The arrays are whole days starting at midnight (NaN after a failure is ignored).
    """
    cgm = np.asarray(cgm_mg_dl, dtype=float)
    ins = np.asarray(insulin_u, dtype=float)
    if cgm.ndim != 2 or cgm.shape != ins.shape or cgm.shape[1] == 0:
        raise MetamedValueError(
            "record_features needs CGM and insulin arrays of one shape (n_patients, n_samples); "
            f"received {cgm.shape} and {ins.shape}."
        )
    per_day = int(round(1440 / sample_time_min))
    days = cgm.shape[1] / per_day
    minute = (np.arange(cgm.shape[1]) * sample_time_min) % 1440
    night = (minute >= _NIGHT_HOURS[0] * 60) & (minute < _NIGHT_HOURS[1] * 60)
    valid = np.isfinite(cgm)
    mean = np.nanmean(np.where(valid, cgm, np.nan), axis=1)
    below = np.nanmean(np.where(valid, cgm < 70, np.nan), axis=1)
    sd = np.nanstd(np.where(valid, cgm, np.nan), axis=1)
    per_day_u = ins.sum(axis=1) / days
    night_rate = ins[:, night].sum(axis=1) / (night.sum() * sample_time_min / 60.0)
    return np.stack(
        [
            np.log(mean),
            below,
            np.log(np.maximum(per_day_u, 1e-3)),
            np.log(np.maximum(night_rate, 1e-3)),
            sd / mean,
        ],
        axis=1,
    )


#: Candidate grid of the per-patient search, as multiples of an age-group reference
#: (basal, correction factor) and absolute horizons in minutes.
BASAL_MULTIPLES: tuple[float, ...] = tuple(float(v) for v in np.geomspace(0.6, 3.0, 7))
CF_MULTIPLES: tuple[float, ...] = tuple(float(v) for v in np.geomspace(0.2, 2.8, 8))
HORIZONS_MIN: tuple[float, ...] = (30.0, 60.0, 90.0, 120.0)
# Grid centre: a clinical pump start from body weight, the same for every age group
# (total daily insulin 0.5 U/kg/day, half of it basal, correction factor by the 1800
# rule); it uses nothing the simulator hides.
_TDI_U_PER_KG = 0.5


def weight_start(body_weight_kg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basal (U/h) and correction factor (mg/dL/U) of a weight-based pump start."""
    tdi = _TDI_U_PER_KG * np.asarray(body_weight_kg, dtype=float)
    return 0.5 * tdi / 24.0, 1800.0 / tdi


def candidate_grid() -> np.ndarray:
    """All (basal multiple, CF multiple, horizon) candidates, shape (n_candidates, 3)."""
    return np.array(list(itertools.product(BASAL_MULTIPLES, CF_MULTIPLES, HORIZONS_MIN)))


@dataclass
class ClosedLoopAdapter:
    """Meta-learned mapping from a new patient's first days to its loop parameters.

    Fit with :meth:`meta_fit` on training patients (their search optima and their
    records under the population parameters); :meth:`adapt` with 0 days returns the
    age group's population parameters.
    """

    ridge_alphas: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    population_: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    coef_: dict[int, np.ndarray] = field(default_factory=dict, init=False)
    centre_: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = field(
        default_factory=dict, init=False
    )
    trained_on_: tuple[str, ...] = field(default=(), init=False)

    def fit_population(
        self, names: tuple[str, ...], age_groups: tuple[str, ...], optima: np.ndarray
    ) -> ClosedLoopAdapter:
        """Population parameters per age group: geometric mean of the training optima."""
        groups = np.asarray(age_groups)
        opt = np.asarray(optima, dtype=float)
        if opt.shape != (len(names), 3) or len(age_groups) != len(names):
            raise MetamedValueError(
                f"optima must have shape ({len(names)}, 3), one row per training patient; "
                f"received {opt.shape}."
            )
        self.population_ = {
            g: np.exp(np.log(opt[groups == g]).mean(axis=0)) for g in np.unique(groups)
        }
        self.trained_on_ = tuple(names)
        return self

    def population(self, age_groups: tuple[str, ...]) -> ClosedLoopParameters:
        self._check_fitted()
        missing = sorted(set(age_groups) - set(self.population_))
        if missing:
            raise MetamedValueError(
                f"No training patients of age group(s) {missing}; meta-train on every age group."
            )
        return ClosedLoopParameters.from_array(np.stack([self.population_[g] for g in age_groups]))

    def fit_mapping(
        self, days: int, features: np.ndarray, age_groups: tuple[str, ...], optima: np.ndarray
    ) -> ClosedLoopAdapter:
        """Ridge from ``days``-day record features to ``log(optimum / population)``."""
        pop = self.population(age_groups).as_array()
        feats = np.asarray(features, dtype=float)
        groups = np.asarray(age_groups)
        # features centred within the age group (the target is relative to the group's
        # population parameters), scaled by the pooled within-group spread
        mean = {g: feats[groups == g].mean(axis=0) for g in np.unique(groups)}
        centred = feats - np.stack([mean[g] for g in groups])
        sd = centred.std(axis=0) + 1e-9
        z = centred / sd
        target = np.log(np.asarray(optima, dtype=float) / pop)
        self.coef_[days] = _ridge_loo(z, target, self.ridge_alphas)[0]
        self.centre_[days] = (mean, sd)
        return self

    def adapt(
        self, days: int, features: np.ndarray | None, age_groups: tuple[str, ...]
    ) -> ClosedLoopParameters:
        """Parameters of new patients from ``days`` days of their records (0: population)."""
        pop = self.population(age_groups).as_array()
        if days == 0:
            return ClosedLoopParameters.from_array(pop)
        if days not in self.coef_:
            raise NotFittedError(
                f"No mapping meta-trained for {days} days of records; fit_mapping({days}, ...) "
                f"first (fitted: {sorted(self.coef_)})."
            )
        if features is None:
            raise MetamedValueError(f"adapt with {days} days needs the records' features.")
        mean, sd = self.centre_[days]
        centred = np.asarray(features, dtype=float) - np.stack([mean[g] for g in age_groups])
        z = centred / sd
        return ClosedLoopParameters.from_array(pop * np.exp(z @ self.coef_[days]))

    def _check_fitted(self) -> None:
        if not self.population_:
            raise NotFittedError(
                "ClosedLoopAdapter is not meta-trained; call fit_population first."
            )


def simulate_days(
    patients: VirtualPatients,
    params: ClosedLoopParameters,
    days: int,
    seed: int,
    sample_time_min: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Run the loop on ``patients`` for ``days`` one-day episodes (seeds ``seed + d``).

    Returns CGM and insulin records (n, days * steps), the failed flag per patient-day
    (n, days) and the per-patient-day metrics (each (n, days)).  Each day starts at
    midnight from a fresh randomised state, as the evaluation's days do; the G2P2C
    protocol's failure signal (the CGM) ends a day.
    """
    env = GlucoseVectorEnv(
        patients, days=1.0, sample_time_min=sample_time_min, paired_copies=True,
        failure_signal="cgm",
    )  # fmt: skip
    ctrl = ClosedLoopController(params)
    cgm, ins, metrics = [], [], []
    for d in range(days):
        sim = rollout(ctrl, env, seed=seed + d)
        cgm.append(sim.cgm_mg_dl)
        ins.append(sim.insulin_u)
        metrics.append(glycaemic_metrics(sim.bg_mg_dl, failed=sim.failed))
    per_day = {k: np.stack([m[k] for m in metrics], axis=1) for k in metrics[0]}
    return np.concatenate(cgm, axis=1), np.concatenate(ins, axis=1), per_day["failure"], per_day


#: Seed of the first day of the per-patient search (training days only: the evaluation
#: uses seeds 0.., the record days ``record_seed``..).
SEARCH_SEED = 5000


def search_optima(
    patients: VirtualPatients, days: int = 4, seed: int = SEARCH_SEED, sample_time_min: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Best grid candidate of each patient, by :func:`closed_loop_score` over ``days`` days.

    One batched simulation of every patient x candidate (paired: a patient's candidates
    see identical meals and noise).  A patient's optimum depends on that patient alone.
    Returns the optima (n_patients, 3: basal, CF, horizon) and the score of every
    candidate (n_patients, n_candidates).
    """
    grid = candidate_grid()
    n, c = len(patients), grid.shape[0]
    basal0, cf0 = weight_start(patients.body_weight_kg)
    arr = np.empty((n * c, 3))
    arr[:, 0] = np.repeat(basal0, c) * np.tile(grid[:, 0], n)
    arr[:, 1] = np.repeat(cf0, c) * np.tile(grid[:, 1], n)
    arr[:, 2] = np.tile(grid[:, 2], n)
    batch = patients.select([name for name in patients.names for _ in range(c)])
    _, _, _, m = simulate_days(
        batch, ClosedLoopParameters.from_array(arr), days, seed, sample_time_min
    )
    score = closed_loop_score(m).reshape(n, c)
    best = score.argmax(axis=1)
    return arr.reshape(n, c, 3)[np.arange(n), best], score


@dataclass
class ClosedLoopLPOResult:
    """Loop parameters of every patient, each adapted without that patient's fold.

    ``parameters["{d}d"]`` for d = 0 (population) .. record days, rows in ``names``
    order; ``optima`` are the per-patient search optima (each patient's own, used only
    in the folds that train on it); ``adapters`` the meta-trained model of each fold.
    """

    names: tuple[str, ...]
    age_groups: tuple[str, ...]
    fold: np.ndarray
    parameters: dict[str, ClosedLoopParameters]
    optima: np.ndarray
    adapters: list[ClosedLoopAdapter]
    record_metrics: dict[str, np.ndarray]
    #: wall time of the per-patient search (0 when optima were given) and of the rest
    timings_s: dict[str, float] = field(default_factory=dict)
    #: simulated patient-days of the search (0 when optima were given)
    search_patient_days: int = 0


def leave_patients_out_closed_loop(
    patients: VirtualPatients,
    record_days: int = 3,
    n_folds: int = 5,
    record_seed: int = 1000,
    search_days: int = 4,
    sample_time_min: int = 5,
    optima: np.ndarray | None = None,
    ridge_alphas: tuple[float, ...] | None = None,
) -> ClosedLoopLPOResult:
    """Adapt the loop to every patient from its first 0 .. ``record_days`` days, leave-patients-out.

    Patients are dealt into ``n_folds`` folds stratified by age group
    (:func:`~metamed.dosing.personalise.stratified_folds`).  For each fold the adapter is
    meta-trained on the other folds' patients only: their search optima
    (:func:`search_optima`, or ``optima`` if given, rows in patient order) and their
    records under the fold's population parameters; every patient's records are one
    batched simulation of ``record_days`` days (seeds ``record_seed`` ..).
    ``ridge_alphas`` overrides the mapping's penalty grid (:class:`ClosedLoopAdapter`).
    """
    if record_days < 1:
        raise MetamedValueError(f"record_days must be >= 1; received {record_days}.")
    names, groups = patients.names, tuple(patients.age_group)
    fold = stratified_folds(groups, n_folds)
    t0 = time.perf_counter()
    searched = 0
    if optima is None:
        optima, _ = search_optima(patients, search_days, sample_time_min=sample_time_min)
        searched = len(patients) * candidate_grid().shape[0] * search_days
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    optima = np.asarray(optima, dtype=float)
    n = len(names)
    adapters = []
    pop_rows = []
    for f in range(n_folds):
        train = np.flatnonzero(fold != f)
        adapter = (
            ClosedLoopAdapter() if ridge_alphas is None else ClosedLoopAdapter(ridge_alphas)
        ).fit_population(
            tuple(names[i] for i in train), tuple(groups[i] for i in train), optima[train]
        )
        adapters.append(adapter)
        pop_rows.append(adapter.population(groups).as_array())
    # one batch: rows (fold f, patient j) under fold f's population parameters
    batch = patients.select(list(names) * n_folds)
    cgm, ins, _, per_day = simulate_days(
        batch,
        ClosedLoopParameters.from_array(np.concatenate(pop_rows)),
        record_days,
        record_seed,
        sample_time_min,
    )
    per_day_steps = int(round(1440 / sample_time_min))
    est = {f"{d}d": np.zeros((n, 3)) for d in range(record_days + 1)}
    record_metrics = {k: np.zeros(n) for k in ("tir_pct", "below_54_pct", "failure")}
    for f, adapter in enumerate(adapters):
        rows = f * n + np.arange(n)
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        test_groups = tuple(groups[i] for i in test)
        est["0d"][test] = adapter.adapt(0, None, test_groups).as_array()
        for d in range(1, record_days + 1):
            k = d * per_day_steps
            feats = record_features(cgm[rows, :k], ins[rows, :k], sample_time_min)
            adapter.fit_mapping(d, feats[train], tuple(groups[i] for i in train), optima[train])
            est[f"{d}d"][test] = adapter.adapt(d, feats[test], test_groups).as_array()
        for key in record_metrics:
            record_metrics[key][test] = per_day[key][rows[test]].mean(axis=1)
    return ClosedLoopLPOResult(
        names=tuple(names),
        age_groups=groups,
        fold=fold,
        parameters={k: ClosedLoopParameters.from_array(v) for k, v in est.items()},
        optima=optima,
        adapters=adapters,
        record_metrics=record_metrics,
        timings_s={"search_s": search_s, "adapt_s": time.perf_counter() - t0},
        search_patient_days=searched,
    )


@functools.lru_cache(maxsize=4)
def population_leave_patients_out(
    record_days: int = 3, n_folds: int = 5, record_seed: int = 1000
) -> ClosedLoopLPOResult:
    """:func:`leave_patients_out_closed_loop` on all 30 virtual patients, computed once
    per process (the registry entry and the results page share it)."""
    return leave_patients_out_closed_loop(
        load_virtual_patients(), record_days=record_days, n_folds=n_folds, record_seed=record_seed
    )
