"""Test oracle: simglucose's closed loop (``T1DSimEnv`` / ``SimObj``) on our patient model.

metamed has one closed loop, the Gymnasium environment's (:mod:`metamed.dosing.env`).
Its semantics are deliberately not simglucose's (the controller sees the latest CGM
reading and the meal announced for the coming period, in U/h).  To compare the patient
model against simglucose's recorded *closed-loop* runs, the tests need simglucose's own
loop, which lives here and only here:

- the controller acts every ``sample_time_min`` minutes (the CGM's sample time);
- its action is held for that many 1-minute patient steps; in each minute the
  scenario's announced carbohydrate and the pump-delivered insulin drive the model;
- the CGM reads the subcutaneous glucose once per sample time (sample-and-hold in
  between), and, as in simglucose, the observation given to the controller is the
  average of the per-minute held readings over the step just simulated; the reported
  carbohydrate is what was announced during that step.

A controller is any callable ``policy(obs: SimObservation)`` returning either a total
insulin rate in U/min (shape ``(N,)``) or a ``(basal_u_per_min, bolus_u_per_min)``
pair; :class:`SimglucoseBasalBolus` is simglucose's clinical basal-bolus rule.  The
fixtures ``simglucose_simulate`` and ``simglucose_basal_bolus`` hand them to the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from metamed.dosing.devices import CGMSensor, InsulinPump
from metamed.dosing.patient import PatientState, UVAPadova, VirtualPatients
from metamed.dosing.scenario import MINUTES_PER_DAY, MealScenario
from metamed.errors import MetamedTypeError, MetamedValueError

#: Glucose target of simglucose's BBController correction bolus (mg/dL).
SIMGLUCOSE_BB_TARGET_MG_DL = 140.0
#: A correction bolus is added only above this CGM value (simglucose BBController).
SIMGLUCOSE_BB_CORRECTION_THRESHOLD_MG_DL = 150.0


@dataclass(frozen=True)
class SimObservation:
    """What the controller sees at a decision time, for the whole batch.

    Attributes
    ----------
    t_min : int
        Minutes since the start of the simulation.
    cgm_mg_dl : ndarray, shape (N,)
        CGM observation (step-averaged held readings, as simglucose).
    carbs_g : ndarray, shape (N,)
        Carbohydrate announced during the step just simulated, grams.
    sample_time_min : float
        Minutes until the next decision.
    """

    t_min: int
    cgm_mg_dl: np.ndarray
    carbs_g: np.ndarray
    sample_time_min: float


Policy = Callable[[SimObservation], "np.ndarray | tuple[np.ndarray, np.ndarray]"]


class SimglucoseBasalBolus:
    """simglucose's ``BBController`` for a batch (the clinical basal-bolus baseline).

    Basal ``u2ss * BW / 6000`` U/min; when carbohydrate was announced during the last
    step, a bolus ``carbs / CR + (CGM > 150) * (CGM - 140) / CF`` units delivered over
    the next step.  Uses each patient's ``Quest`` CR and CF.
    """

    def __init__(
        self,
        patients: VirtualPatients,
        target_mg_dl: float = SIMGLUCOSE_BB_TARGET_MG_DL,
        correction_threshold_mg_dl: float = SIMGLUCOSE_BB_CORRECTION_THRESHOLD_MG_DL,
    ) -> None:
        self.basal_u_per_min = patients.basal_u_per_min.copy()
        self.carb_ratio_g_per_u = patients.carb_ratio_g_per_u.copy()
        self.correction_factor_mg_dl_per_u = patients.correction_factor_mg_dl_per_u.copy()
        self.target_mg_dl = float(target_mg_dl)
        self.correction_threshold_mg_dl = float(correction_threshold_mg_dl)

    def __call__(self, obs: SimObservation) -> tuple[np.ndarray, np.ndarray]:
        correction = (obs.cgm_mg_dl > self.correction_threshold_mg_dl) * (
            (obs.cgm_mg_dl - self.target_mg_dl) / self.correction_factor_mg_dl_per_u
        )
        bolus_u = np.where(obs.carbs_g > 0, obs.carbs_g / self.carb_ratio_g_per_u + correction, 0.0)
        return self.basal_u_per_min, bolus_u / obs.sample_time_min


@dataclass(frozen=True)
class SimResult:
    """Record of a :func:`simulate` run with ``K`` controller steps.

    Attributes
    ----------
    names : tuple of str
    t_min : ndarray, shape (K + 1,)
    plasma_glucose_mg_dl, subcutaneous_glucose_mg_dl : ndarray, shape (K + 1, N)
        Instantaneous model glucose at each decision time.
    cgm_mg_dl : ndarray, shape (K + 1, N)
        Observations given to the controller.
    insulin_u_per_min : ndarray, shape (K, N)
        Mean delivered insulin rate during each step (pump output).
    carbs_g : ndarray, shape (K, N)
        Carbohydrate announced during each step.
    final_state : PatientState
    """

    names: tuple[str, ...]
    t_min: np.ndarray
    plasma_glucose_mg_dl: np.ndarray
    subcutaneous_glucose_mg_dl: np.ndarray
    cgm_mg_dl: np.ndarray
    insulin_u_per_min: np.ndarray
    carbs_g: np.ndarray
    final_state: PatientState


def simulate(
    patients: VirtualPatients,
    policy: Policy,
    scenario: MealScenario | np.ndarray,
    days: float,
    *,
    sensor: CGMSensor | None = None,
    pump: InsulinPump | None = None,
    rng: np.random.Generator | None = None,
    substeps: int = 1,
    initial_state: PatientState | None = None,
) -> SimResult:
    """Closed-loop simulation of a batch of virtual patients.

    Parameters
    ----------
    patients : VirtualPatients
    policy : callable
        ``policy(SimObservation)`` -> insulin rate U/min ``(N,)`` or ``(basal, bolus)``.
    scenario : MealScenario or ndarray of shape (n_minutes, N)
        Meals; a ready per-minute array of announced grams is also accepted.
    days : float
        Horizon; ``days * 1440`` must be a whole number of sensor sample times.
    sensor : CGMSensor, optional
        Defaults to a noise-free ``GuardianRT`` (5-minute) sensor.
    pump : InsulinPump, optional
        Defaults to ``Insulet``.
    rng : numpy.random.Generator, optional
        Used for random scenarios.
    substeps : int, default 1
        Runge-Kutta sub-steps per minute of the patient model.
    initial_state : PatientState, optional
        Defaults to the patients' steady state.

    Returns
    -------
    SimResult
    """
    n = len(patients)
    sensor = sensor if sensor is not None else CGMSensor("GuardianRT", n, noise=False)
    pump = pump if pump is not None else InsulinPump("Insulet")
    if sensor.n_patients != n:
        raise MetamedValueError(
            f"sensor was built for {sensor.n_patients} patients; expected {n}. "
            "Build CGMSensor(name, n_patients=len(patients), rng=...)."
        )
    st = sensor.sample_time_min
    n_minutes_f = float(days) * MINUTES_PER_DAY
    n_steps_f = n_minutes_f / st
    if days <= 0 or abs(n_steps_f - round(n_steps_f)) > 1e-9:
        raise MetamedValueError(
            f"days * 1440 must be a positive multiple of the sensor sample time ({st} min); "
            f"received days={days!r} ({n_minutes_f} min)."
        )
    n_steps = int(round(n_steps_f))
    st_int = int(st)
    n_minutes = n_steps * st_int
    if isinstance(scenario, MealScenario):
        carbs = scenario.schedule(patients, n_minutes, rng)
    elif isinstance(scenario, np.ndarray):
        carbs = np.asarray(scenario, dtype=float)
        if carbs.shape != (n_minutes, n):
            raise MetamedValueError(
                f"A carbohydrate array must have shape (n_minutes, N) = ({n_minutes}, {n}); "
                f"received {carbs.shape}."
            )
    else:
        raise MetamedTypeError(
            "scenario must be a MealScenario or an ndarray of announced grams per minute; "
            f"received {type(scenario).__name__}."
        )

    model = UVAPadova(patients, substeps=substeps)
    state = initial_state if initial_state is not None else model.initial_state()
    plasma = np.empty((n_steps + 1, n))
    subq = np.empty((n_steps + 1, n))
    cgm_obs = np.empty((n_steps + 1, n))
    insulin_rec = np.empty((n_steps, n))
    carbs_rec = np.empty((n_steps, n))
    plasma[0] = model.plasma_glucose_mg_dl(state)
    subq[0] = model.subcutaneous_glucose_mg_dl(state)
    held = sensor.measure(subq[0])
    cgm_obs[0] = held
    obs = SimObservation(0, held.copy(), np.zeros(n), st)
    for k in range(n_steps):
        action = policy(obs)
        if isinstance(action, tuple):
            insulin = pump.deliver(action[0], action[1])
        else:
            insulin = pump.basal(action)
        insulin = np.broadcast_to(np.asarray(insulin, dtype=float), (n,))
        t0 = k * st_int
        # the action is held for the whole sample period: one fused model call
        state = model.advance_unchecked(state, carbs[t0 : t0 + st_int], insulin)
        plasma[k + 1] = model.plasma_glucose_mg_dl(state)
        subq[k + 1] = model.subcutaneous_glucose_mg_dl(state)
        # simglucose averages the per-minute held readings over the step: the old
        # reading for the first st - 1 minutes, the new one (read once per sample time)
        # in the last minute
        new_reading = sensor.measure(subq[k + 1])
        cgm_obs[k + 1] = ((st_int - 1) * held + new_reading) / st_int
        held = new_reading
        insulin_rec[k] = insulin
        carbs_rec[k] = carbs[t0 : t0 + st_int].sum(axis=0)
        obs = SimObservation(t0 + st_int, cgm_obs[k + 1].copy(), carbs_rec[k].copy(), st)
    return SimResult(
        names=patients.names,
        t_min=np.arange(n_steps + 1) * st,
        plasma_glucose_mg_dl=plasma,
        subcutaneous_glucose_mg_dl=subq,
        cgm_mg_dl=cgm_obs,
        insulin_u_per_min=insulin_rec,
        carbs_g=carbs_rec,
        final_state=state,
    )


@pytest.fixture(scope="session")
def simglucose_simulate():
    """simglucose's closed loop on our patient model (:func:`simulate`)."""
    return simulate


@pytest.fixture(scope="session")
def simglucose_basal_bolus():
    """simglucose's basal-bolus rule for a batch (:class:`SimglucoseBasalBolus`)."""
    return SimglucoseBasalBolus
