"""Batched insulin controllers: clinical basal-bolus and a PID feedback controller.

Every controller acts on a whole batch of patients at once.  The interface is small
so it can sit behind the Gymnasium vector environment or a plain simulation loop::

    ctrl = BasalBolusController(basal_u_per_h, carb_ratio_g_per_u, correction_factor_mg_dl_per_u)
    ctrl.reset()
    rate_u_per_h = ctrl.act(ControlInput(cgm_mg_dl, announced_carbs_g, sample_time_min))

``act`` returns an insulin **rate in U/h** for the coming sample period (the unit of the
environment's action space): a bolus of ``B`` units is delivered as a rate
``B / (sample_time_min / 60)`` U/h over one sample period, so the delivered amount does
not depend on the sample time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamed.errors import MetamedValueError

__all__ = [
    "ControlInput",
    "Controller",
    "BasalBolusController",
    "PIDController",
    "StackedController",
    "LowGlucoseSuspend",
    "PLGS_THRESHOLD_MG_DL",
    "PLGS_HORIZON_MIN",
    "BOLUS_TARGET_MG_DL",
    "CORRECTIONS",
    "CORRECTION_REFERENCE_MG_DL",
    "CORRECTION_THRESHOLD_MG_DL",
    "PID_TARGET_MG_DL",
    "G2P2C_CORRECTION_COOLDOWN_MIN",
    "tdi_rule_therapy",
]

# Basal-bolus parameters of the clinical standard controller shipped with simglucose (Xie,
# simglucose v0.2, following Kovatchev et al. 2009): correction bolus only above 150 mg/dL,
# correcting towards 140 mg/dL.
BOLUS_TARGET_MG_DL: float = 140.0
CORRECTION_THRESHOLD_MG_DL: float = 150.0
#: Glucose at which a correction factor is read as the drop per unit by the
#: ``glucose_scaled`` correction (the personaliser's model reference, 120 mg/dL).
CORRECTION_REFERENCE_MG_DL: float = 120.0
#: The bolus-correction formulas of :class:`BasalBolusController`.
CORRECTIONS: tuple[str, ...] = ("linear", "glucose_scaled")
# G2P2C's clinical basal-bolus (Hettiarachchi et al. 2024; public code RL4H/G2P2C,
# agents/std_bb/BBController.py): therapy from total daily insulin (TDI) by the clinical
# "500 rule" (CR = 500 / TDI g/U) and "1800 rule" (CF = 1800 / TDI mg/dL/U), basal = 48 % of
# TDI spread over 24 h, and no correction bolus within 3 h after a previous meal bolus.
TDI_RULE_CR_NUMERATOR_G: float = 500.0
TDI_RULE_CF_NUMERATOR_MG_DL: float = 1800.0
TDI_RULE_BASAL_FRACTION: float = 0.48
G2P2C_CORRECTION_COOLDOWN_MIN: float = 180.0
# PID set point: middle of the lower half of the 70-180 target range, the usual closed-loop
# target (e.g. Steil et al., Diabetes 2006;55:3344-3350 used 120 mg/dL).
PID_TARGET_MG_DL: float = 120.0
# Predictive low-glucose suspend as insulin pumps implement it (Medtronic SmartGuard
# "suspend before low": suspend when the sensor glucose is predicted to reach the low
# limit + 20 mg/dL within 30 minutes; Abraham et al., Diabetes Care 2018;41:303-310):
# with the usual 60 mg/dL low limit, suspend when the 30-min prediction is below 80 mg/dL.
PLGS_THRESHOLD_MG_DL: float = 80.0
PLGS_HORIZON_MIN: float = 30.0
# readings the trend is fitted on (the latest 20 minutes at a 5-min sample time)
_PLGS_TREND_READINGS = 5


@dataclass(frozen=True)
class ControlInput:
    """What a controller may see at one decision time, for a batch of patients.

    Attributes
    ----------
    cgm_mg_dl : numpy.ndarray, shape (n_patients,)
        Latest sensor glucose.
    announced_carbs_g : numpy.ndarray, shape (n_patients,)
        Carbohydrate announced for this sample period (zeros when meals are not announced).
    sample_time_min : float
        Length of the coming sample period (the environment step).
    """

    cgm_mg_dl: np.ndarray
    announced_carbs_g: np.ndarray
    sample_time_min: float


def _per_patient(name: str, value: np.ndarray | float, n: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if n is not None and arr.shape[0] == 1 and n > 1:
        arr = np.repeat(arr, n)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise MetamedValueError(
            f"{name} must be a finite, non-negative value per patient; received {value!r}."
        )
    return arr


class Controller:
    """Base class: a batched controller mapping :class:`ControlInput` to U/h."""

    name: str = "controller"
    uses_meal_announcement: bool = False

    @property
    def n_patients(self) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        """Clear internal state (integrators, last readings) before a new episode."""

    def act(self, inp: ControlInput) -> np.ndarray:
        """Insulin rate in U/h per patient for the coming sample period."""
        raise NotImplementedError

    def _check(self, inp: ControlInput) -> None:
        if inp.cgm_mg_dl.shape != (self.n_patients,):
            raise MetamedValueError(
                f"{self.name}: expected cgm_mg_dl of shape ({self.n_patients},); received "
                f"{inp.cgm_mg_dl.shape}. Build the controller for the same patient batch."
            )
        if inp.sample_time_min <= 0:
            raise MetamedValueError(
                f"sample_time_min must be > 0 minutes; received {inp.sample_time_min}."
            )


def tdi_rule_therapy(
    total_daily_insulin_u: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rule-of-thumb therapy from total daily insulin, as G2P2C's clinical basal-bolus.

    Returns ``(basal_u_per_h, carb_ratio_g_per_u, correction_factor_mg_dl_per_u)`` =
    ``(0.48 TDI / 24, 500 / TDI, 1800 / TDI)`` (the "500" and "1800" rules; source:
    RL4H/G2P2C ``agents/std_bb/BBController.py``, ``adjust_parameters``).  Unlike the
    Quest values these do not hold a virtual patient at its steady state.
    """
    tdi = _per_patient("total_daily_insulin_u", total_daily_insulin_u)
    if np.any(tdi <= 0):
        raise MetamedValueError(f"total_daily_insulin_u must be > 0; received {tdi!r}.")
    return (
        TDI_RULE_BASAL_FRACTION * tdi / 24.0,
        TDI_RULE_CR_NUMERATOR_G / tdi,
        TDI_RULE_CF_NUMERATOR_MG_DL / tdi,
    )


class BasalBolusController(Controller):
    """Clinical basal-bolus therapy with meal announcement.

    Basal at the patient's basal rate; at each announced meal a bolus
    ``carbs / CR + (CGM - 140) / CF`` if ``CGM > 150`` mg/dL, else ``carbs / CR``.

    With ``correction="glucose_scaled"`` the correction is
    ``(120 / CF) * ln(CGM / 140)`` instead: the dose that brings the glucose to the target
    when each unit's effect is proportional to the glucose (insulin-dependent uptake in
    the UVA/Padova model, and the personaliser's model, :mod:`metamed.dosing.personalise`),
    the correction factor being the drop per unit at 120 mg/dL.  Near the target the two
    agree within 15 %; from 280 mg/dL the scaled correction is 40 % smaller, where the
    linear one took a child whose glucose had climbed overnight below 40 mg/dL
    (``docs/results/dosing.md``, safety section).

    Parameters
    ----------
    basal_u_per_h, carb_ratio_g_per_u, correction_factor_mg_dl_per_u : array_like, shape (n_patients,)
        Per-patient therapy parameters (the Quest values of the virtual patients, or
        personalised estimates from :mod:`metamed.dosing.personalise`).
    target_mg_dl, correction_threshold_mg_dl : float
        Correction target and the glucose above which a correction is added.
    correction_cooldown_min : float, default 0
        No correction bolus if a meal was announced within this many minutes before the
        current decision (G2P2C's controller uses 180, see
        :data:`G2P2C_CORRECTION_COOLDOWN_MIN`, to avoid stacking corrections on a meal
        bolus still acting); 0 disables the rule.
    """

    name = "basal_bolus"
    uses_meal_announcement = True

    def __init__(
        self,
        basal_u_per_h: np.ndarray | float,
        carb_ratio_g_per_u: np.ndarray | float,
        correction_factor_mg_dl_per_u: np.ndarray | float,
        target_mg_dl: float = BOLUS_TARGET_MG_DL,
        correction_threshold_mg_dl: float = CORRECTION_THRESHOLD_MG_DL,
        correction_cooldown_min: float = 0.0,
        correction: str = "linear",
    ) -> None:
        self.basal_u_per_h = _per_patient("basal_u_per_h", basal_u_per_h)
        n = self.basal_u_per_h.shape[0]
        self.carb_ratio_g_per_u = _per_patient("carb_ratio_g_per_u", carb_ratio_g_per_u, n)
        self.correction_factor_mg_dl_per_u = _per_patient(
            "correction_factor_mg_dl_per_u", correction_factor_mg_dl_per_u, n
        )
        if not (self.carb_ratio_g_per_u.shape == self.correction_factor_mg_dl_per_u.shape == (n,)):
            raise MetamedValueError(
                "basal_u_per_h, carb_ratio_g_per_u and correction_factor_mg_dl_per_u must have "
                f"one value per patient; received lengths {n}, {self.carb_ratio_g_per_u.shape[0]}, "
                f"{self.correction_factor_mg_dl_per_u.shape[0]}."
            )
        if np.any(self.carb_ratio_g_per_u <= 0) or np.any(self.correction_factor_mg_dl_per_u <= 0):
            raise MetamedValueError("carb ratios and correction factors must be > 0.")
        self.target_mg_dl = float(target_mg_dl)
        self.correction_threshold_mg_dl = float(correction_threshold_mg_dl)
        if not np.isfinite(correction_cooldown_min) or correction_cooldown_min < 0:
            raise MetamedValueError(
                f"correction_cooldown_min must be >= 0 minutes; received {correction_cooldown_min}."
            )
        self.correction_cooldown_min = float(correction_cooldown_min)
        if correction not in CORRECTIONS:
            raise MetamedValueError(
                f"correction must be one of {list(CORRECTIONS)}; received {correction!r}."
            )
        self.correction = correction
        self.reset()

    @property
    def n_patients(self) -> int:
        return self.basal_u_per_h.shape[0]

    def reset(self) -> None:
        # minutes since the last decision with an announced meal (inf: none yet)
        self._since_meal_min = np.full(self.n_patients, np.inf)

    def bolus_u(
        self,
        cgm_mg_dl: np.ndarray,
        announced_carbs_g: np.ndarray,
        allow_correction: np.ndarray | bool = True,
    ) -> np.ndarray:
        """Meal bolus in units (zero where no carbohydrate is announced)."""
        meal = announced_carbs_g > 0
        if self.correction == "linear":
            excess = cgm_mg_dl - self.target_mg_dl
        else:  # glucose_scaled; the threshold keeps the logarithm's argument above 1
            ratio = np.maximum(cgm_mg_dl, self.target_mg_dl) / self.target_mg_dl
            excess = CORRECTION_REFERENCE_MG_DL * np.log(ratio)
        correction = np.where(
            (cgm_mg_dl > self.correction_threshold_mg_dl) & allow_correction,
            excess / self.correction_factor_mg_dl_per_u,
            0.0,
        )
        return np.where(meal, announced_carbs_g / self.carb_ratio_g_per_u + correction, 0.0)

    def act(self, inp: ControlInput) -> np.ndarray:
        self._check(inp)
        carbs = np.asarray(inp.announced_carbs_g, dtype=float)
        self._since_meal_min = self._since_meal_min + inp.sample_time_min
        allow = self._since_meal_min > self.correction_cooldown_min
        bolus = self.bolus_u(inp.cgm_mg_dl, carbs, allow)
        self._since_meal_min = np.where(carbs > 0, 0.0, self._since_meal_min)
        return self.basal_u_per_h + bolus * 60.0 / inp.sample_time_min


class PIDController(Controller):
    """PID feedback on sensor glucose around a set point, without meal announcement.

    ``rate = basal + Kp e + Ki \\int e dt + Kd de/dt`` with ``e = CGM - target`` (mg/dL),
    clipped at zero.  Gains are scaled per patient by the insulin sensitivity: with
    correction factor CF (mg/dL per U), ``Kp = kp_per_h / CF`` in U/h per mg/dL, so a
    deviation of one CF above target adds ``kp_per_h`` U/h; the integral and derivative
    gains scale the same way (``ki_per_h2`` per hour of accumulated error, ``kd`` in hours).
    This is the same idea as scaling gains by total daily insulin (Steil et al. 2006):
    a more insulin-sensitive patient (large CF, typically a child) gets gentler gains.
    The integrator has anti-windup: it only integrates while the output is not clipped
    at zero, and is bounded to ``+-integral_limit_mg_dl_h``.

    Default gains were chosen by a small grid search on training adults, adolescents and
    children (see ``docs/dosing/controllers.md``).
    """

    name = "pid"

    def __init__(
        self,
        basal_u_per_h: np.ndarray | float,
        correction_factor_mg_dl_per_u: np.ndarray | float,
        kp_per_h: float = 0.1,
        ki_per_h2: float = 0.005,
        kd_h: float = 0.25,
        target_mg_dl: float = PID_TARGET_MG_DL,
        integral_limit_mg_dl_h: float = 300.0,
    ) -> None:
        self.basal_u_per_h = _per_patient("basal_u_per_h", basal_u_per_h)
        n = self.basal_u_per_h.shape[0]
        self.correction_factor_mg_dl_per_u = _per_patient(
            "correction_factor_mg_dl_per_u", correction_factor_mg_dl_per_u, n
        )
        if self.correction_factor_mg_dl_per_u.shape != (n,) or np.any(
            self.correction_factor_mg_dl_per_u <= 0
        ):
            raise MetamedValueError(
                f"correction_factor_mg_dl_per_u must be > 0 with one value per patient ({n})."
            )
        for label, gain in (("kp_per_h", kp_per_h), ("ki_per_h2", ki_per_h2), ("kd_h", kd_h)):
            if not np.isfinite(gain) or gain < 0:
                raise MetamedValueError(f"{label} must be finite and >= 0; received {gain}.")
        self.kp_per_h = float(kp_per_h)
        self.ki_per_h2 = float(ki_per_h2)
        self.kd_h = float(kd_h)
        self.target_mg_dl = float(target_mg_dl)
        self.integral_limit_mg_dl_h = float(integral_limit_mg_dl_h)
        self.reset()

    @property
    def n_patients(self) -> int:
        return self.basal_u_per_h.shape[0]

    def reset(self) -> None:
        self._integral_mg_dl_h = np.zeros(self.n_patients)
        self._last_error_mg_dl: np.ndarray | None = None

    def act(self, inp: ControlInput) -> np.ndarray:
        self._check(inp)
        dt_h = inp.sample_time_min / 60.0
        error = inp.cgm_mg_dl - self.target_mg_dl
        deriv = (
            np.zeros_like(error)
            if self._last_error_mg_dl is None
            else (error - self._last_error_mg_dl) / dt_h
        )
        self._last_error_mg_dl = error
        inv_cf = 1.0 / self.correction_factor_mg_dl_per_u
        candidate = np.clip(
            self._integral_mg_dl_h + error * dt_h,
            -self.integral_limit_mg_dl_h,
            self.integral_limit_mg_dl_h,
        )
        raw = self.basal_u_per_h + inv_cf * (
            self.kp_per_h * error + self.ki_per_h2 * candidate + self.kd_h * deriv
        )
        # anti-windup: accept the new integral only where the output is not saturated at zero
        self._integral_mg_dl_h = np.where(raw > 0, candidate, self._integral_mg_dl_h)
        return np.maximum(raw, 0.0)


class StackedController(Controller):
    """Several controllers side by side on consecutive slices of one patient batch.

    Lets different controllers (and therapy settings) share one batched simulation:
    rows ``[0, n_0)`` go to the first controller, the next ``n_1`` rows to the second,
    and so on.  A part that does not use meal announcement receives zero announced
    carbohydrate even when the environment announces meals.
    """

    name = "stacked"
    uses_meal_announcement = True

    def __init__(self, parts: list[Controller]) -> None:
        if not parts:
            raise MetamedValueError("StackedController needs at least one controller.")
        self.parts = list(parts)
        self._bounds = np.cumsum([0] + [p.n_patients for p in self.parts])

    @property
    def n_patients(self) -> int:
        return int(self._bounds[-1])

    def reset(self) -> None:
        for part in self.parts:
            part.reset()

    def act(self, inp: ControlInput) -> np.ndarray:
        self._check(inp)
        out = np.empty(self.n_patients)
        for part, lo, hi in zip(self.parts, self._bounds[:-1], self._bounds[1:], strict=True):
            carbs = inp.announced_carbs_g[lo:hi]
            if not part.uses_meal_announcement:
                carbs = np.zeros_like(carbs)
            out[lo:hi] = part.act(ControlInput(inp.cgm_mg_dl[lo:hi], carbs, inp.sample_time_min))
        return out


class LowGlucoseSuspend(Controller):
    """Predictive low-glucose suspend around any controller (a pump's safety layer).

    Each step the CGM is extrapolated ``horizon_min`` ahead along the least-squares line
    through the latest readings (20 minutes at a 5-min sample time; fewer at the start of
    an episode); while that prediction is below ``threshold_mg_dl`` the basal delivery is
    suspended: the wrapped controller's rate minus ``basal_u_per_h``, never below zero, so
    a meal bolus still goes through while a low is predicted.  Delivery resumes by itself
    on recovery, as soon as the prediction is back at or above the threshold.  The wrapped
    controller is told nothing (it keeps acting on the CGM as before).

    Parameters
    ----------
    inner : Controller
        The controller whose insulin is guarded.
    basal_u_per_h : array_like, shape (n_patients,)
        The basal rate that a suspension withholds (the wrapped controller's own basal).
    threshold_mg_dl, horizon_min : float
        Suspend while the CGM predicted ``horizon_min`` ahead is below ``threshold_mg_dl``.
    """

    def __init__(
        self,
        inner: Controller,
        basal_u_per_h: np.ndarray | float,
        threshold_mg_dl: float = PLGS_THRESHOLD_MG_DL,
        horizon_min: float = PLGS_HORIZON_MIN,
    ) -> None:
        if not isinstance(inner, Controller):
            raise MetamedValueError(
                f"LowGlucoseSuspend wraps a Controller; received {type(inner).__name__}."
            )
        for label, value in (("threshold_mg_dl", threshold_mg_dl), ("horizon_min", horizon_min)):
            if not np.isfinite(value) or value <= 0:
                raise MetamedValueError(f"{label} must be a positive number; received {value!r}.")
        self.inner = inner
        self.basal_u_per_h = _per_patient("basal_u_per_h", basal_u_per_h, inner.n_patients)
        if self.basal_u_per_h.shape != (inner.n_patients,):
            raise MetamedValueError(
                f"basal_u_per_h needs one rate per patient ({inner.n_patients}); received "
                f"{self.basal_u_per_h.shape[0]}."
            )
        self.threshold_mg_dl = float(threshold_mg_dl)
        self.horizon_min = float(horizon_min)
        self.name = f"{inner.name}+plgs"
        self.uses_meal_announcement = inner.uses_meal_announcement
        self.reset()

    @property
    def n_patients(self) -> int:
        return self.inner.n_patients

    def reset(self) -> None:
        self.inner.reset()
        self._readings: list[np.ndarray] = []
        #: Whether each patient's basal was suspended at the last step.
        self.suspended = np.zeros(self.n_patients, dtype=bool)

    def predicted_mg_dl(self, sample_time_min: float) -> np.ndarray:
        """CGM predicted ``horizon_min`` after the latest reading (the fitted trend)."""
        y = np.asarray(self._readings)  # (k, n), oldest first
        k = y.shape[0]
        if k < 2:
            return y[-1]
        t = (np.arange(k) - (k - 1)) * sample_time_min  # minutes, latest reading at 0
        tc = t - t.mean()
        slope = tc @ (y - y.mean(axis=0)) / (tc @ tc)
        at_now = y.mean(axis=0) - slope * t.mean()
        return at_now + slope * self.horizon_min

    def act(self, inp: ControlInput) -> np.ndarray:
        self._check(inp)
        rate = np.asarray(self.inner.act(inp), dtype=float)
        self._readings.append(np.asarray(inp.cgm_mg_dl, dtype=float))
        del self._readings[:-_PLGS_TREND_READINGS]
        self.suspended = self.predicted_mg_dl(inp.sample_time_min) < self.threshold_mg_dl
        return np.where(self.suspended, np.maximum(rate - self.basal_u_per_h, 0.0), rate)
