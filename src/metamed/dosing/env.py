"""Gymnasium environments for insulin dosing on the batched UVA/Padova simulator.

``GlucoseVectorEnv`` steps *all* virtual patients with one batched simulator call per
minute; ``GlucoseDosingEnv`` is the single-patient ``gymnasium.Env`` registered as
``metamed/GlucoseDosing-v0`` (``gymnasium.make("metamed/GlucoseDosing-v0")``; the vector
class is its ``vector_entry_point``, ``gymnasium.make_vec(..., vectorization_mode=
"vector_entry_point")``).  All patients are simulated, not real people.

Design (and the traps it avoids)
--------------------------------
* **Action units.** The action is an insulin *rate* in U/h (basal + bolus) held over the
  coming CGM sample period, bounded by the pump (``Box(0, max_rate_u_per_h)``).  A bolus
  of ``B`` units is the rate ``B * 60 / sample_time_min``.  (simglucose mixes U/min
  actions with U/h pump limits; a policy trained on one sample time then over- or
  under-doses on another.)
* **Meal and insulin accounting do not depend on the sample time.**  The patient model
  always runs at 1-minute steps inside an environment step; each scenario meal is given
  to the model once, in grams, at its own minute, and insulin is delivered as the rate
  for each minute.  (Old simglucose versions multiplied the meal by the sample time, so
  a 3-minute CGM tripled every meal.)  ``tests/dosing/test_env.py`` checks that the
  glucose trace is the same for 1-, 3- and 5-minute sample times.
* **Ending early is never attractive.**  The per-step reward is
  ``-min(risk(BG), 100) / 100`` in ``[-1, 0]`` (Kovatchev risk, see
  :mod:`metamed.dosing.metrics`), and a termination by severe hypo/hyperglycaemia adds a
  penalty of ``-1`` per remaining step of the horizon, the worst possible reward of the
  rest of the episode.  (A negative per-step reward without that penalty rewards a
  policy for killing the patient early.)
* Termination when blood glucose leaves ``[40, 600]`` mg/dL (the G2P2C thresholds);
  truncation at the horizon.  "Blood glucose" here is the model's noise-free
  subcutaneous glucose, the quantity simglucose and G2P2C report and score; the CGM
  adds sensor noise to it.

Observation (float32): the last ``history`` CGM readings (oldest first, mg/dL), insulin
on board (U, two-compartment decay with peak action at 75 min), and, with meal
announcement, the carbohydrate (g) of meals starting within the coming sample period.
``reset(seed=...)`` seeds the meal scenario, the initial glucose and the sensor noise.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from metamed._gym import ENV_ID, register_envs
from metamed.dosing import _kernel
from metamed.dosing.controllers import ControlInput, Controller
from metamed.dosing.devices import CGM_SENSORS, CGMSensor, InsulinPump
from metamed.dosing.metrics import (
    FAILURE_HIGH_MG_DL,
    FAILURE_LOW_MG_DL,
    KOVATCHEV_RISK,
    RISK_GLUCOSE_FLOOR_MG_DL,
    glycaemic_metrics,
)
from metamed.dosing.patient import (
    PMOL_PER_U,
    PatientState,
    UVAPadova,
    VirtualPatients,
    load_virtual_patients,
)
from metamed.dosing.scenario import (
    MINUTES_PER_DAY,
    FixedMealScenario,
    G2P2CMealScenario,
    MealScenario,
)
from metamed.errors import MetamedValueError, unknown_name

__all__ = [
    "ENV_ID",
    "GlucoseDosingEnv",
    "GlucoseVectorEnv",
    "IOB_PEAK_MIN",
    "MAX_RATE_U_PER_H",
    "RISK_REWARD_CAP",
    "SimulationResult",
    "rollout",
]

# Peak of rapid-acting insulin action after a subcutaneous dose, ~75 min (the adult
# rapid-acting curve of the Loop / OpenAPS exponential insulin model).  Used only for the
# insulin-on-board observation; the patient model has its own insulin kinetics.
IOB_PEAK_MIN: float = 75.0
# Upper bound of the action (U/h), our safety bound: a 30 U/h basal plus a 30 U bolus
# delivered within one 5-minute period (360 U/h).  30 U is the largest bolus and 30 U/h the
# largest basal rate commercial patch pumps accept (e.g. Omnipod).  simglucose's pump table
# quotes its limits per *minute* (30 U/min), which never binds; the pump model
# (metamed.dosing.devices.InsulinPump) still quantises and clips every minute.
MAX_BOLUS_U: float = 30.0
MAX_BASAL_U_PER_H: float = 30.0
MAX_RATE_U_PER_H: float = MAX_BASAL_U_PER_H + MAX_BOLUS_U * 60.0 / 5.0
# CGM model whose native sample time matches the environment step (simglucose's sensors).
_SENSOR_FOR_SAMPLE_TIME_MIN = {1: "Navigator", 3: "Dexcom", 5: "GuardianRT"}
# Risk saturates at 100 at BG = 600 mg/dL (by construction of Kovatchev's scale); capping
# there keeps the per-step reward in [-1, 0] even for sub-physiological sensor values.
RISK_REWARD_CAP: float = 100.0
_RISK_TABLE = np.array([*KOVATCHEV_RISK, RISK_REWARD_CAP, RISK_GLUCOSE_FLOOR_MG_DL])
# CGM noise drawn ahead per chunk, in steps (at most ten days of 5-min readings)
_NOISE_CHUNK_STEPS = 2880


#: Keys ``reset(options=...)`` accepts: the vector env replaces its patients, the single
#: env switches its patient (the task, for meta-RL).
VECTOR_RESET_OPTIONS = ("patients",)
SINGLE_RESET_OPTIONS = ("patient",)


class _Streams(Sequence):
    """One generator per row, made on first use: child ``k`` of each row's stream.

    ``SeedSequence(entropy, spawn_key=key + (k,))`` is exactly what
    ``SeedSequence(entropy, spawn_key=key).spawn(3)[k]`` returns, without building the
    parent and its siblings; and a stream nobody draws from (the autoresets of rows that
    never fail, the meals of a fixed scenario) is never built.  Building all three
    streams of 1,000 rows up front took a third of a second, as long as a simulated day.
    """

    def __init__(
        self, entropy: int | Sequence[int], keys: list[tuple[int, ...]], child: int
    ) -> None:
        self._entropy = entropy
        self._keys = keys
        self._child = child
        self._made: dict[int, np.random.Generator] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i not in self._made:
            seq = np.random.SeedSequence(self._entropy, spawn_key=self._keys[i] + (self._child,))
            self._made[i] = np.random.default_rng(seq)
        return self._made[i]


class _Rows(Sequence):
    """Rows ``idx`` of a :class:`_Streams`, built only when drawn from (a fixed meal
    scenario never draws, and building 1,000 generators per reset cost ~10 % of a day)."""

    def __init__(self, streams: Sequence[np.random.Generator], idx: np.ndarray) -> None:
        self._streams = streams
        self._idx = idx

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[k] for k in range(*j.indices(len(self)))]
        return self._streams[int(self._idx[j])]


def _resolve_patients(patients: VirtualPatients | str | list[str] | None) -> VirtualPatients:
    if isinstance(patients, VirtualPatients):
        return patients
    return load_virtual_patients(patients)


def _check_options(options: dict[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    # an option that is silently ignored makes an experiment do something else than asked
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise MetamedValueError(f"reset options must be a dict; received {type(options).__name__}.")
    for key in options:
        if key not in allowed:
            raise unknown_name("reset option", str(key), allowed)
    return options


class GlucoseVectorEnv(VectorEnv):
    """All virtual patients as one batched Gymnasium vector environment.

    Parameters
    ----------
    patients : VirtualPatients, str, list of str or None
        Patients (one sub-environment each); names, an age group or None for all 30.
    num_envs : int, optional
        If given and different from the number of selected patients, the selection is
        cycled to this many sub-environments (``gymnasium.make_vec`` passes it).
    days : float
        Episode horizon in days (truncation).
    sample_time_min : int
        CGM sample period = environment step, minutes (a whole number of model minutes).
    history : int
        Number of CGM readings in the observation.
    meal_announcement : bool
        Whether the observation contains the carbohydrate of upcoming meals.
    scenario : str or MealScenario
        ``"random"``: :class:`~metamed.dosing.scenario.G2P2CMealScenario` (the G2P2C
        randomised daily meals, age-group sized, new draws per reset); ``"fixed"``:
        :class:`~metamed.dosing.scenario.FixedMealScenario` (50, 70, 80 g at 7, 12, 18 h);
        or any :class:`~metamed.dosing.scenario.MealScenario` instance.
    sensor_noise : bool
        Whether the CGM adds sensor noise (:class:`~metamed.dosing.devices.CGMSensor`,
        simglucose's Johnson/AR(1) model; the sensor type whose sample time equals
        ``sample_time_min``: Navigator 1 min, Dexcom 3 min, GuardianRT 5 min).
    random_init_bg : bool
        Whether the initial glucose is randomised around each patient's steady state.
    paired_copies : bool
        Random streams are per patient row: ``reset(seed)`` derives each row's meals,
        initial glucose, sensor noise and autoresets from ``(seed, patient name, copy)``,
        so a row's draws never depend on the other rows of the batch.  With
        ``paired_copies=True`` every copy of the same patient gets the *same* streams
        (copy index 0), which makes controllers run side by side on copies of a patient
        a paired comparison (identical meals and CGM noise per patient-day).  Default
        ``False``: copies are independent draws (e.g. for training).
    announce_ahead_min : int
        Meal announcement lead time: ``upcoming_carbs_g`` (and the observation) report
        meals starting ``announce_ahead_min`` minutes after the coming sample period
        begins, e.g. 20 for the G2P2C protocol's pre-meal bolus (default 0: meals
        starting within the coming period).
    failure_signal : {"bg", "cgm"}
        Glucose signal that ends an episode outside [40, 600] mg/dL: the noise-free
        glucose (default) or the CGM reading, with inclusive bounds (``<= 40`` or
        ``>= 600``, as the G2P2C evaluation scripts do).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    # Boxes, not just any Space: rollout reads their bounds.
    single_observation_space: spaces.Box
    single_action_space: spaces.Box

    def __init__(
        self,
        patients: VirtualPatients | str | list[str] | None = None,
        days: float = 1.0,
        sample_time_min: int = 5,
        history: int = 12,
        meal_announcement: bool = True,
        scenario: str | MealScenario = "random",
        sensor_noise: bool = True,
        random_init_bg: bool = True,
        num_envs: int | None = None,
        paired_copies: bool = False,
        announce_ahead_min: int = 0,
        failure_signal: str = "bg",
    ) -> None:
        if not isinstance(sample_time_min, (int, np.integer)) or sample_time_min < 1:
            raise MetamedValueError(
                f"sample_time_min must be a positive whole number of minutes; received "
                f"{sample_time_min!r}. The patient model runs at 1-minute steps."
            )
        if days <= 0 or history < 1:
            raise MetamedValueError(
                f"days must be > 0 and history >= 1; received days={days}, history={history}."
            )
        if not isinstance(announce_ahead_min, (int, np.integer)) or announce_ahead_min < 0:
            raise MetamedValueError(
                f"announce_ahead_min must be a whole number of minutes >= 0; received "
                f"{announce_ahead_min!r}."
            )
        if failure_signal not in ("bg", "cgm"):
            raise MetamedValueError(
                f"failure_signal must be 'bg' or 'cgm'; received {failure_signal!r}."
            )
        if not isinstance(scenario, MealScenario) and scenario not in ("random", "fixed"):
            raise MetamedValueError(
                f"Unknown scenario {scenario!r}. Known scenarios: fixed, random, or a "
                "MealScenario instance."
            )
        chosen = _resolve_patients(patients)
        if num_envs is not None and num_envs != len(chosen):
            # gymnasium.make_vec passes num_envs: cycle through the selected patients
            if num_envs < 1:
                raise MetamedValueError(f"num_envs must be >= 1; received {num_envs}.")
            names = chosen.names
            chosen = chosen.select([names[i % len(names)] for i in range(num_envs)])
        self.num_envs = len(chosen)
        self.paired_copies = bool(paired_copies)
        self._set_patients(chosen)
        self.sample_time_min = int(sample_time_min)
        self.horizon_min = int(round(days * 1440))
        self.horizon_steps = self.horizon_min // self.sample_time_min
        self.history = int(history)
        self.meal_announcement = bool(meal_announcement)
        self.scenario = scenario
        self.sensor_noise = bool(sensor_noise)
        self.random_init_bg = bool(random_init_bg)
        self.announce_ahead_min = int(announce_ahead_min)
        self.failure_signal = failure_signal
        obs_dim = self.history + 1 + int(self.meal_announcement)
        self._sensor_name = _SENSOR_FOR_SAMPLE_TIME_MIN.get(self.sample_time_min, "GuardianRT")
        self._scenario: MealScenario
        if isinstance(scenario, MealScenario):
            self._scenario = scenario
        else:
            self._scenario = G2P2CMealScenario() if scenario == "random" else FixedMealScenario()
        self._pump = InsulinPump("Insulet")
        pump = self._pump.params
        # the constants env_step needs, as float tables (see _kernel.env_step)
        self._pump_table = np.array(
            [pump.inc_basal, pump.min_basal, pump.max_basal, float(self._pump.bolus(0.0)),
             PMOL_PER_U]
        )  # fmt: skip
        sensor = CGM_SENSORS[self._sensor_name]
        self._sensor_table = np.array([sensor.min_mg_dl, sensor.max_mg_dl])
        self._env_table = np.array(
            [self.sample_time_min, self.horizon_steps, self.announce_ahead_min,
             self.meal_announcement, failure_signal == "cgm", FAILURE_LOW_MG_DL,
             FAILURE_HIGH_MG_DL, IOB_PEAK_MIN, MAX_RATE_U_PER_H],
            dtype=float,
        )  # fmt: skip
        high = self._observation_high()
        self.single_observation_space = spaces.Box(0.0, high, shape=(obs_dim,), dtype=np.float32)
        self.single_action_space = spaces.Box(0.0, MAX_RATE_U_PER_H, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(
            0.0, np.tile(high, (self.num_envs, 1)), dtype=np.float32
        )
        self.action_space = spaces.Box(
            0.0, MAX_RATE_U_PER_H, shape=(self.num_envs, 1), dtype=np.float32
        )
        self._rngs: Sequence[np.random.Generator] = []
        self._autoreset_rngs: Sequence[np.random.Generator] = []
        self._sensor_rngs: Sequence[np.random.Generator] = []
        self._entropy: int | Sequence[int] | None = None
        self._task_switches = 0
        self._state: PatientState | None = None
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    # ------------------------------------------------------------------ helpers
    @property
    def age_groups(self) -> tuple[str, ...]:
        return self.patients.age_group

    def _observation_high(self) -> np.ndarray:
        """Upper bounds of the observation, each one a limit the values cannot pass.

        CGM readings are clipped to the sensor's range.  Insulin on board of the
        two-compartment model rises toward ``2 * IOB_PEAK_MIN * u`` under a constant
        delivery of ``u`` U/min and never above it, so the pump's largest delivery
        bounds it.  Announced carbohydrate in one sample period is at most the
        scenario's largest day for every calendar day the period can touch (infinite
        for a scenario that declares no largest day).
        """
        cgm_max = CGM_SENSORS[self._sensor_name].max_mg_dl
        max_u_per_min = float(self._pump.deliver(MAX_RATE_U_PER_H / 60.0))
        high = [*[cgm_max] * self.history, 2.0 * IOB_PEAK_MIN * max_u_per_min]
        if self.meal_announcement:
            days_touched = (self.sample_time_min - 1) // MINUTES_PER_DAY + 2
            high.append(days_touched * self._scenario.max_daily_g())
        return np.array(high, dtype=np.float32)

    def _set_patients(self, patients: VirtualPatients) -> None:
        self.patients = patients
        self.model = UVAPadova(patients)
        # per-row stream key (patient name, copy index): stable across batch compositions
        seen: dict[str, int] = {}
        keys = []
        for name in patients.names:
            copy = 0 if self.paired_copies else seen.get(name, 0)
            seen[name] = seen.get(name, 0) + 1
            keys.append((zlib.crc32(name.encode("utf-8")), copy))
        self._stream_keys = keys

    def _new_meals(self, idx: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        sub = self.patients.select([self.patients.names[i] for i in idx])
        self._meals_g[idx] = self._scenario.schedule(
            sub, self._meals_g.shape[1], _Rows(rngs, idx)
        ).T

    def _reset_patients(self, idx: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        chosen = set(idx.tolist())
        init = self.model.initial_state(
            [rngs[i] if i in chosen else None for i in range(self.num_envs)]
            if self.random_init_bg
            else None
        )
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[idx] = True
        if self._state is None:
            self._state = init.copy()  # env.step updates its arrays in place
        else:
            s = self._state
            self._state = type(s)(
                x=np.where(mask[None, :], init.x, s.x),
                planned_carbs_g=np.where(mask, init.planned_carbs_g, s.planned_carbs_g),
                last_eaten_g=np.where(mask, init.last_eaten_g, s.last_eaten_g),
                meal_start_qsto_mg=np.where(mask, init.meal_start_qsto_mg, s.meal_start_qsto_mg),
                meal_eaten_g=np.where(mask, init.meal_eaten_g, s.meal_eaten_g),
                is_eating=np.where(mask, init.is_eating, s.is_eating),
                t_min=s.t_min,
            )
        self._new_meals(idx, rngs)
        self._t_min[idx] = 0
        self._iob[:, idx] = 0.0
        bg = self.model.subcutaneous_glucose_mg_dl(self._state)
        # first reading of the reset patients with the sensor's current noise value; the
        # noise process (a property of the sensor) is not advanced for anyone
        reading = self._read(bg)
        self._cgm_hist[idx] = reading[idx, None]
        self._needs_reset[idx] = False

    def _read(self, bg: np.ndarray) -> np.ndarray:
        # a reading with the sensor's current noise value (step() advances it)
        p = self._sensor.params
        return np.clip(bg + self._noise_mg_dl, p.min_mg_dl, p.max_mg_dl)

    def _observe(self) -> np.ndarray:
        parts = [self._cgm_hist, self._iob.sum(axis=0)[:, None]]
        if self.meal_announcement:
            parts.append(self.upcoming_carbs_g()[:, None])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def upcoming_carbs_g(self) -> np.ndarray:
        """Carbohydrate of meals starting within the coming sample period, g, per patient."""
        cols = (
            self._t_min[:, None]
            + self.announce_ahead_min
            + np.arange(self.sample_time_min)[None, :]
        )
        return np.take_along_axis(self._meals_g, cols, axis=1).sum(axis=1)

    def blood_glucose_mg_dl(self) -> np.ndarray:
        """Noise-free glucose of every patient now (what metrics and termination use)."""
        if self._state is None:
            raise MetamedValueError("Call reset() before reading the blood glucose.")
        return self.model.subcutaneous_glucose_mg_dl(self._state)

    def _info(self) -> dict[str, Any]:
        return {
            "bg_mg_dl": self.blood_glucose_mg_dl().copy(),
            "cgm_mg_dl": self._cgm_hist[:, -1].copy(),
            "upcoming_carbs_g": self.upcoming_carbs_g(),
            "t_min": self._t_min.copy(),
        }

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes for every patient; ``seed`` seeds meals, initial BG and noise.

        ``options={"patients": names}`` first replaces the batch's patients (the tasks):
        one name per row, or an age group, of exactly ``num_envs`` patients.  Other
        option keys are rejected.
        """
        new_patients = _check_options(options, VECTOR_RESET_OPTIONS).get("patients")
        if new_patients is not None:
            chosen = _resolve_patients(new_patients)
            if len(chosen) != self.num_envs:
                raise MetamedValueError(
                    f"reset(options={{'patients': ...}}) needs one patient per row "
                    f"({self.num_envs}); received {len(chosen)}. Build a new environment to "
                    "change the batch size."
                )
            self._set_patients(chosen)
            self._task_switches += 1
        if seed is not None:
            self._entropy = np.random.SeedSequence(seed).entropy
            self._task_switches = 0
        if seed is not None or self._state is None or new_patients is not None:
            # One set of streams per row, keyed by (seed, patient, copy): a row's meals,
            # initial glucose and noise never depend on the other rows, and autoresets
            # draw from their own stream, so one patient's failure never shifts the
            # random numbers of the others.  A task switch without a seed continues from
            # the last seed's entropy with its own key, so a seeded sequence of resets is
            # reproducible.
            if self._entropy is None:
                self._entropy = np.random.SeedSequence().entropy
            # SeedSequence always draws entropy when given none; its stubs allow None
            entropy = cast("int | Sequence[int]", self._entropy)
            switch = (self._task_switches,) if self._task_switches else ()
            keys = [key + switch for key in self._stream_keys]
            self._rngs = _Streams(entropy, keys, 0)
            self._autoreset_rngs = _Streams(entropy, keys, 1)
            self._sensor_rngs = _Streams(entropy, keys, 2)
        n = self.num_envs
        self._state = None
        self._meals_g = np.zeros(
            (n, self.horizon_min + self.announce_ahead_min + self.sample_time_min)
        )
        self._t_min = np.zeros(n, dtype=int)
        self._iob = np.zeros((2, n))
        self._cgm_hist = np.zeros((n, self.history))
        self._sensor = CGMSensor(
            self._sensor_name,
            n_patients=n,
            rng=self._sensor_rngs,
            noise=self.sensor_noise,
        )
        self._noise_mg_dl = self._sensor.noise_mg_dl()
        # the next readings' noise, drawn a horizon at a time (one generator call per
        # row and chunk, not per step); step() refills it when used up
        chunk = max(1, min(self.horizon_steps, _NOISE_CHUNK_STEPS))
        self._noise_buf = np.empty((chunk, n))
        self._noise_pos = chunk
        self._reset_patients(np.arange(n), self._rngs)
        return self._observe(), self._info()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Hold each patient's insulin rate (U/h) for one sample period of 1-minute steps."""
        if self._state is None:
            raise MetamedValueError("Call reset() before step().")
        rate = np.asarray(actions, dtype=float).reshape(self.num_envs, -1)[:, 0]
        if not np.all(np.isfinite(rate)):
            raise MetamedValueError(
                f"Actions must be finite insulin rates in U/h; received {actions!r}."
            )
        resetting = np.flatnonzero(self._needs_reset)
        n = self.num_envs
        if self._noise_pos == self._noise_buf.shape[0]:
            self._noise_buf = self._sensor.noise_ahead_mg_dl(self._noise_buf.shape[0])
            self._noise_pos = 0
        self._noise_mg_dl = self._noise_buf[self._noise_pos]
        self._noise_pos += 1
        obs = np.empty((n, self.single_observation_space.shape[0]), dtype=np.float32)
        reward = np.empty(n)
        terminated = np.empty(n, dtype=bool)
        truncated = np.empty(n, dtype=bool)
        bg = np.empty(n)
        upcoming = np.empty(n)
        s = self._state
        model = self.model
        # the whole step (pump, model, insulin on board, CGM, reward, termination,
        # observation) is one compiled call over the batch: see _kernel.env_step
        args = (
            s.x, s.planned_carbs_g, s.last_eaten_g, s.meal_start_qsto_mg, s.meal_eaten_g,
            s.is_eating, model._lane_table, model._kernel_constants, model.substeps,
            rate, ~self._needs_reset, self._meals_g, self._t_min, self._iob, self._cgm_hist,
            self._noise_mg_dl, self._pump_table, self._sensor_table, _RISK_TABLE,
            self._env_table, obs, reward, terminated, truncated, bg, upcoming,
        )  # fmt: skip
        if model.parallel:
            _kernel.env_step_parallel(*args, _kernel.thread_blocks(n))
        else:
            _kernel.env_step(*args)
        self._state = dataclasses.replace(s, t_min=s.t_min + self.sample_time_min)
        info = {
            "bg_mg_dl": bg,
            "cgm_mg_dl": self._cgm_hist[:, -1].copy(),
            "upcoming_carbs_g": upcoming,
            "t_min": self._t_min.copy(),
            "failure": terminated.copy(),
        }
        if resetting.size:
            self._reset_patients(resetting, self._autoreset_rngs)
            info = self._info()
            info["failure"] = terminated.copy()
            obs = self._observe()
        self._needs_reset = terminated | truncated
        return obs, reward, terminated, truncated, info


class GlucoseDosingEnv(gym.Env):
    """One virtual patient as a ``gymnasium.Env`` (``metamed/GlucoseDosing-v0``).

    Parameters are those of :class:`GlucoseVectorEnv`, with ``patient`` a single name
    (default ``"adult#001"``).
    """

    metadata = {"render_modes": []}

    def __init__(self, patient: str = "adult#001", **kwargs: Any) -> None:
        self._vec = GlucoseVectorEnv(load_virtual_patients([patient]), **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.patient = patient

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode; ``options={"patient": name}`` first switches the patient.

        Meta-RL samples a task per episode this way; other option keys are rejected.
        """
        patient = _check_options(options, SINGLE_RESET_OPTIONS).get("patient")
        super().reset(seed=seed)
        vec_options = None
        if patient is not None:
            if not isinstance(patient, str):
                raise MetamedValueError(
                    "reset(options={'patient': ...}) takes one patient name such as "
                    f"'child#002'; received {patient!r}."
                )
            vec_options = {"patients": [patient]}
        obs, info = self._vec.reset(seed=seed, options=vec_options)
        if patient is not None:
            self.patient = patient
        return obs[0], {k: v[0] for k, v in info.items()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._vec.step(
            np.asarray(action, dtype=float).reshape(1, 1)
        )
        return (
            obs[0],
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            {k: v[0] for k, v in info.items()},
        )


register_envs()  # usually done already by `import metamed` (see metamed._gym)


@dataclass(frozen=True)
class SimulationResult:
    """Traces of one closed-loop run, shape ``(n_patients, horizon_steps)`` each.

    ``bg_mg_dl`` and ``cgm_mg_dl`` are NaN after a patient's episode failed (metrics pad
    them with the terminal value, see :mod:`metamed.dosing.metrics`).
    """

    names: tuple[str, ...]
    age_groups: tuple[str, ...]
    bg_mg_dl: np.ndarray
    cgm_mg_dl: np.ndarray
    insulin_u: np.ndarray
    carbs_g: np.ndarray
    failed: np.ndarray
    sample_time_min: float

    def metrics(self) -> dict[str, np.ndarray]:
        """Per-patient glycaemic metrics over the full horizon."""
        return glycaemic_metrics(self.bg_mg_dl, failed=self.failed)


def rollout(
    controller: Controller, env: GlucoseVectorEnv, seed: int, steps: int | None = None
) -> SimulationResult:
    """Run ``controller`` on every patient of ``env`` for one episode (the env's horizon).

    ``steps`` stops after that many control steps instead (a trial run).

    The controller sees the latest CGM reading and, if it uses meal announcement and
    the env announces meals, the carbohydrate of meals starting in the coming period.
    """
    if controller.n_patients != env.num_envs:
        raise MetamedValueError(
            f"Controller '{controller.name}' is set up for {controller.n_patients} patients but "
            f"the environment has {env.num_envs}; build both from the same patient batch."
        )
    _, info = env.reset(seed=seed)
    controller.reset()
    n, h = env.num_envs, env.horizon_steps if steps is None else min(steps, env.horizon_steps)
    # traces are filled one step (one row of every patient) at a time: time-major buffers
    # keep each step's writes contiguous (patient-major, each write touched n cache lines)
    bg = np.full((h, n), np.nan)
    cgm = np.full((h, n), np.nan)
    insulin = np.zeros((h, n))
    carbs = np.zeros((h, n))
    alive = np.ones(n, dtype=bool)
    announce = controller.uses_meal_announcement and env.meal_announcement
    dt_h = env.sample_time_min / 60.0
    for k in range(h):
        upcoming = info["upcoming_carbs_g"]
        inp = ControlInput(
            cgm_mg_dl=info["cgm_mg_dl"],
            announced_carbs_g=upcoming if announce else np.zeros(n),
            sample_time_min=float(env.sample_time_min),
        )
        rate = np.clip(
            controller.act(inp), env.single_action_space.low[0], env.single_action_space.high[0]
        )
        insulin[k] = np.where(alive, rate * dt_h, 0.0)
        carbs[k] = np.where(alive, upcoming, 0.0)
        _, _, terminated, _, info = env.step(rate[:, None])
        bg[k] = np.where(alive, info["bg_mg_dl"], np.nan)
        cgm[k] = np.where(alive, info["cgm_mg_dl"], np.nan)
        alive &= ~terminated
    return SimulationResult(
        names=env.patients.names,
        age_groups=env.patients.age_group,
        bg_mg_dl=np.ascontiguousarray(bg.T),
        cgm_mg_dl=np.ascontiguousarray(cgm.T),
        insulin_u=np.ascontiguousarray(insulin.T),
        carbs_g=np.ascontiguousarray(carbs.T),
        failed=~alive,
        sample_time_min=float(env.sample_time_min),
    )
