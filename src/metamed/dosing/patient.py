"""Batched UVA/Padova type-1-diabetes patient model (simulated patients, not real people).

This module implements the UVA/Padova 2008 glucose-insulin model (Dalla Man, Rizza &
Cobelli, IEEE Trans Biomed Eng 2007; Kovatchev et al., J Diabetes Sci Technol 2009;
parameters of Dalla Man et al., J Diabetes Sci Technol 2014) in the form used by the
open-source simulator ``simglucose`` 0.2.11 (Jinyu Xie, MIT licence): the same 13
states, parameters, units, gastric-emptying meal logic and insulin input conversion.
The code is written from the published equations; simglucose is only the reference the
tests compare against (``tests/dosing/test_fidelity.py``) and is not a dependency.

Every array holds a *batch* of ``N`` virtual patients, so one :meth:`UVAPadova.step`
call advances all of them by one minute with a fixed-step Runge-Kutta integrator.

Public API
----------
``load_virtual_patients(names=None)`` -> :class:`VirtualPatients`
    The 30 simglucose virtual patients (or a subset: a list of names, or an age group
    ``"adolescent"``, ``"adult"``, ``"child"``), with model parameters and therapy
    constants (carbohydrate ratio ``carb_ratio_g_per_u``, correction factor
    ``correction_factor_mg_dl_per_u``, total daily insulin ``total_daily_insulin_u``,
    steady-state basal ``basal_u_per_h`` / ``basal_u_per_min``, ``body_weight_kg``,
    ``age_years``, ``age_group``).
``UVAPadova(patients, substeps=...)``
    The batched model.  Time step is always one minute (``UVAPadova.DT_MIN``), as in
    simglucose; ``substeps`` third-order Runge-Kutta sub-steps are taken inside each minute.

    - ``initial_state(rng=None)`` -> :class:`PatientState` (simglucose's steady state;
      with ``rng`` the glucose states are randomised as simglucose's ``random_init_bg``).
    - ``step(state, carbs_g, insulin_u_per_min)`` -> new :class:`PatientState`
      (the input state is not modified).  ``carbs_g`` (shape ``(N,)``) is the
      carbohydrate *announced* at this minute, in grams: it is added to the patient's
      plate and eaten at ``EAT_RATE_G_PER_MIN`` = 5 g/min over the following minutes,
      exactly as simglucose's patient does with the scenario's meal amount.
      ``insulin_u_per_min`` (shape ``(N,)``) is the insulin infusion rate held over the
      minute (basal + bolus, U/min); a bolus of B units given in one minute is a rate
      of B U/min for that minute.
    - ``run(state, carbs_g, insulin_u_per_min)`` with inputs of shape ``(T, N)`` ->
      ``(final_state, Trajectory)`` for open-loop simulation of ``T`` minutes.
    - ``plasma_glucose_mg_dl(state)``: blood (plasma) glucose ``Gp / Vg``.
    - ``subcutaneous_glucose_mg_dl(state)``: interstitial glucose ``Gs / Vg``, what a
      CGM measures.  NOTE: simglucose's reported "BG" is this subcutaneous value.
    - ``basal_u_per_min``: the insulin rate that keeps each patient at steady state.

States (index in ``PatientState.x``, shape ``(13, N)``, units as simglucose):
0 ``Qsto1`` solid glucose in stomach (mg), 1 ``Qsto2`` liquid glucose in stomach (mg),
2 ``Qgut`` glucose in intestine (mg), 3 ``Gp`` plasma glucose (mg/kg),
4 ``Gt`` tissue glucose (mg/kg), 5 ``Ip`` plasma insulin (pmol/kg),
6 ``X`` insulin action on glucose utilisation (pmol/L), 7 ``I1`` delayed insulin
(pmol/L), 8 ``Id`` insulin action on production (pmol/L), 9 ``Il`` liver insulin
(pmol/kg), 10 ``Isc1`` and 11 ``Isc2`` subcutaneous insulin (pmol/kg),
12 ``Gs`` subcutaneous glucose (mg/kg).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from metamed.dosing import _kernel
from metamed.errors import MetamedTypeError, MetamedValueError, unknown_name

__all__ = [
    "AGE_GROUPS",
    "EAT_RATE_G_PER_MIN",
    "N_STATES",
    "PMOL_PER_U",
    "STATE_NAMES",
    "PatientState",
    "Trajectory",
    "UVAPadova",
    "VirtualPatients",
    "load_virtual_patients",
]

#: Insulin unit conversion, 1 U = 6000 pmol (simglucose ``InsulinPump.U2PMOL``).
PMOL_PER_U = 6000.0
#: Rate at which an announced meal is eaten (simglucose ``T1DPatient.EAT_RATE``), g/min.
EAT_RATE_G_PER_MIN = 5.0
#: Number of model states.
N_STATES = 13
#: State names in order (Dalla Man et al. 2007 notation).
STATE_NAMES = (
    "Qsto1",
    "Qsto2",
    "Qgut",
    "Gp",
    "Gt",
    "Ip",
    "X",
    "I1",
    "Id",
    "Il",
    "Isc1",
    "Isc2",
    "Gs",
)
#: Age groups of the simglucose virtual cohort (10 patients each).
AGE_GROUPS = ("adolescent", "adult", "child")

# Model parameters read from vpatient_params.csv (simglucose column names).
_MODEL_PARAMS = (
    "BW",
    "Gb",
    "Ib",
    "kabs",
    "kmax",
    "kmin",
    "b",
    "d",
    "Vg",
    "Vi",
    "Vmx",
    "Km0",
    "k2",
    "k1",
    "p2u",
    "m1",
    "m2",
    "m4",
    "m30",
    "ki",
    "kp1",
    "kp2",
    "kp3",
    "f",
    "ke1",
    "ke2",
    "Fsnc",
    "Vm0",
    "kd",
    "ksc",
    "ka1",
    "ka2",
    "u2ss",
)


def _describe_bad(arr: np.ndarray) -> str:
    finite = arr[np.isfinite(arr)]
    low = f"{finite.min():g}" if finite.size else "none finite"
    return f"min={low}, non-finite values={int(arr.size - finite.size)}"


def _expm_batch(a: np.ndarray) -> np.ndarray:
    """Matrix exponential of a stack of small matrices, shape (N, k, k).

    Scaling and squaring with a degree-18 Taylor polynomial, batched in numpy (scipy's
    expm is called per matrix and is slow to set up for many patients).  After scaling,
    every matrix has 1-norm <= 0.5, so the truncation error is below 1e-22 relative.
    """
    norms = np.abs(a).sum(axis=1).max(axis=1)  # 1-norm of each matrix
    squarings = np.maximum(0, np.ceil(np.log2(np.maximum(norms, 1e-300) / 0.5))).astype(int)
    scaled = a / (2.0**squarings)[:, None, None]
    eye = np.broadcast_to(np.eye(a.shape[1]), a.shape)
    result = eye.copy()
    term = eye.copy()
    for k in range(1, 19):
        term = term @ scaled / k
        result = result + term
    for i, n_sq in enumerate(squarings):
        for _ in range(n_sq):
            result[i] = result[i] @ result[i]
    return result


def _read_packaged_csv(filename: str) -> pd.DataFrame:
    # The attribution header is a block of leading "#" lines.  pandas' comment="#" cannot
    # be used because patient names themselves contain "#" ("adult#001").
    text = resources.files("metamed.dosing.params").joinpath(filename).read_text("utf-8")
    lines = text.splitlines()
    n_header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return pd.read_csv(io.StringIO("\n".join(lines[n_header:])))


@dataclass(frozen=True)
class VirtualPatients:
    """A batch of simglucose virtual patients (simulated, not real people).

    Attributes
    ----------
    names : tuple of str
        Patient names such as ``"adult#001"``; the order defines the batch axis.
    params : dict of str to ndarray
        UVA/Padova parameters, each of shape ``(N,)``, keyed by simglucose column name
        (``BW`` kg, ``Vg`` dL/kg, ``u2ss`` pmol/(kg min), ...).
    initial_state_x : ndarray, shape (13, N)
        Steady-state initial condition ``x0_1 .. x0_13`` from the parameter file.
    carb_ratio_g_per_u, correction_factor_mg_dl_per_u, total_daily_insulin_u, age_years : ndarray
        Therapy constants from simglucose's ``Quest.csv``, shape ``(N,)``.
    """

    names: tuple[str, ...]
    params: dict[str, np.ndarray]
    initial_state_x: np.ndarray
    carb_ratio_g_per_u: np.ndarray
    correction_factor_mg_dl_per_u: np.ndarray
    total_daily_insulin_u: np.ndarray
    age_years: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def age_group(self) -> tuple[str, ...]:
        """Age group of each patient (``"adolescent"``, ``"adult"`` or ``"child"``)."""
        return tuple(n.split("#")[0] for n in self.names)

    @property
    def body_weight_kg(self) -> np.ndarray:
        """Body weight, kg, shape ``(N,)``."""
        return self.params["BW"]

    @property
    def basal_u_per_min(self) -> np.ndarray:
        """Steady-state basal insulin rate ``u2ss * BW / 6000``, U/min, shape ``(N,)``."""
        return self.params["u2ss"] * self.params["BW"] / PMOL_PER_U

    @property
    def basal_u_per_h(self) -> np.ndarray:
        """Steady-state basal insulin rate, U/h, shape ``(N,)``."""
        return self.basal_u_per_min * 60.0

    def select(self, names: Sequence[str] | str) -> VirtualPatients:
        """Return the sub-batch with the given names (or age groups), in that order."""
        idx = _resolve_names(self.names, names)
        return VirtualPatients(
            names=tuple(self.names[i] for i in idx),
            params={k: v[idx].copy() for k, v in self.params.items()},
            initial_state_x=self.initial_state_x[:, idx].copy(),
            carb_ratio_g_per_u=self.carb_ratio_g_per_u[idx].copy(),
            correction_factor_mg_dl_per_u=self.correction_factor_mg_dl_per_u[idx].copy(),
            total_daily_insulin_u=self.total_daily_insulin_u[idx].copy(),
            age_years=self.age_years[idx].copy(),
        )


def _resolve_names(available: Sequence[str], names: Sequence[str] | str | None) -> list[int]:
    if names is None:
        return list(range(len(available)))
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Sequence):
        raise MetamedTypeError(
            "Virtual patient selection must be None, an age group "
            f"({', '.join(AGE_GROUPS)}) or a list of names; received {type(names).__name__}."
        )
    lookup = {n: i for i, n in enumerate(available)}
    out: list[int] = []
    for n in names:
        if n in AGE_GROUPS:
            out.extend(i for i, name in enumerate(available) if name.split("#")[0] == n)
        elif n in lookup:
            out.append(lookup[n])
        elif "#" in str(n) or any(c.isdigit() for c in str(n)):
            raise unknown_name("virtual patient", str(n), available)
        else:
            # a word without a number is a mistyped age group: offer the groups, not the
            # 30 patient names (a close patient name would be a misleading suggestion)
            raise unknown_name("age group", str(n), AGE_GROUPS)
    if not out:
        raise MetamedValueError(
            "Virtual patient selection is empty: expected at least one name, received an "
            "empty list. Pass None for all 30 patients."
        )
    return out


def load_virtual_patients(names: Sequence[str] | str | None = None) -> VirtualPatients:
    """Load the simglucose virtual patients shipped with metamed.

    Parameters
    ----------
    names : None, str or sequence of str
        ``None`` for all 30 patients (order: adolescent#001-010, adult#001-010,
        child#001-010); an age group ``"adolescent"``, ``"adult"`` or ``"child"``; a
        single name; or a list of names and age groups (the order is kept, an age group
        stands for its patients).

    Returns
    -------
    VirtualPatients

    Raises
    ------
    UnknownNameError
        If a name is not one of the 30 patients or an age group (with a "did you mean"
        hint: age groups for a word without a number, patient names otherwise).

    Notes
    -----
    Data: simglucose 0.2.11 (Jinyu Xie, MIT licence), parameters from the UVA/Padova
    simulator (Dalla Man et al. 2014). These are simulated patients, not real people.
    """
    vp = _read_packaged_csv("vpatient_params.csv")
    quest = _read_packaged_csv("quest.csv").set_index("Name").loc[vp["Name"]]
    x0_cols = [c for c in vp.columns if c.startswith("x0_")]
    if len(x0_cols) != N_STATES:  # pragma: no cover - guards a corrupted package file
        raise MetamedValueError(
            f"vpatient_params.csv has {len(x0_cols)} initial-state columns; expected {N_STATES}."
        )
    all_patients = VirtualPatients(
        names=tuple(vp["Name"]),
        params={k: vp[k].to_numpy(dtype=float) for k in _MODEL_PARAMS},
        initial_state_x=vp[x0_cols].to_numpy(dtype=float).T.copy(),
        carb_ratio_g_per_u=quest["CR"].to_numpy(dtype=float),
        correction_factor_mg_dl_per_u=quest["CF"].to_numpy(dtype=float),
        total_daily_insulin_u=quest["TDI"].to_numpy(dtype=float),
        age_years=quest["Age"].to_numpy(dtype=float),
    )
    if names is None:
        return all_patients
    return all_patients.select(names)


@dataclass(frozen=True)
class PatientState:
    """State of a batch of ``N`` patients at one minute.

    Attributes
    ----------
    x : ndarray, shape (13, N)
        Model states (see :data:`STATE_NAMES` and the module docstring for units).
    planned_carbs_g : ndarray, shape (N,)
        Announced carbohydrate not yet eaten, g.
    last_eaten_g : ndarray, shape (N,)
        Carbohydrate eaten during the previous minute, g (detects meal start/end).
    meal_start_qsto_mg : ndarray, shape (N,)
        Stomach content ``Qsto1 + Qsto2`` when the current/last meal started, mg.
    meal_eaten_g : ndarray, shape (N,)
        Carbohydrate eaten so far in the current/last meal, g.  With
        ``meal_start_qsto_mg`` it forms ``Dbar`` of the gastric-emptying model.
    is_eating : ndarray of bool, shape (N,)
    t_min : int
        Minutes simulated since the start.
    """

    x: np.ndarray
    planned_carbs_g: np.ndarray
    last_eaten_g: np.ndarray
    meal_start_qsto_mg: np.ndarray
    meal_eaten_g: np.ndarray
    is_eating: np.ndarray
    t_min: int = 0

    @property
    def n_patients(self) -> int:
        return int(self.x.shape[1])

    def copy(self) -> PatientState:
        """Deep copy (the arrays are copied)."""
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name).copy()
                for f in dataclasses.fields(self)
                if f.name != "t_min"
            },
        )


@dataclass(frozen=True)
class Trajectory:
    """Per-minute record of an open-loop :meth:`UVAPadova.run`.

    All arrays have shape ``(T + 1, N)``: row 0 is the initial state, row ``t`` the
    state after ``t`` minutes.
    """

    plasma_glucose_mg_dl: np.ndarray
    subcutaneous_glucose_mg_dl: np.ndarray


class UVAPadova:
    """Batched UVA/Padova T1D patient model with a fixed 1-minute step.

    Parameters
    ----------
    patients : VirtualPatients
        The batch of ``N`` patients.
    substeps : int, default 1
        Runge-Kutta sub-steps per minute.  The meal and insulin inputs are held
        constant over each minute, as in simglucose.  One sub-step matches simglucose's
        adaptive Dormand-Prince solution to well within 2 mg/dL (see
        ``tests/dosing/test_fidelity.py``); more sub-steps only cost time.
    parallel : bool, default False
        Spread the patients of :meth:`advance_unchecked` over numba's threads
        (``NUMBA_NUM_THREADS``).  Off by default: on the loaded shared 2-core machine
        where it was measured, a thread launch per sensor period cost more than it saved
        (``benchmarks/results/sim_throughput.md`` times both).

    Notes
    -----
    Equations (Dalla Man et al. 2007 with the simglucose 0.2.11 conventions): the
    gastric-emptying rate ``kgut`` depends on the stomach content relative to
    ``Dbar = meal_start_qsto_mg + 1000 * meal_eaten_g`` (mg), endogenous glucose
    production is clipped at zero, renal excretion above the threshold ``ke2``,
    Michaelis-Menten insulin-dependent utilisation, subcutaneous insulin in
    pmol/kg/min converted from U/min as ``u * 6000 / BW``.
    """

    #: Model time step, minutes (simglucose ``T1DPatient.SAMPLE_TIME``).
    DT_MIN: float = 1.0

    # The gastric-emptying cache of the numpy reference step (set in _precompute).
    _gut_cache: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None

    def __init__(
        self, patients: VirtualPatients, substeps: int = 1, parallel: bool = False
    ) -> None:
        if not isinstance(patients, VirtualPatients):
            raise MetamedTypeError(
                "UVAPadova expects a VirtualPatients batch (from load_virtual_patients); "
                f"received {type(patients).__name__}."
            )
        if not isinstance(substeps, (int, np.integer)) or substeps < 1:
            raise MetamedValueError(
                f"substeps must be a positive integer (Runge-Kutta steps per minute); "
                f"received {substeps!r}. Use 1 (default) or more for extra accuracy."
            )
        self.patients = patients
        self.substeps = int(substeps)
        self.parallel = bool(parallel)
        p = patients.params
        self._p = {k: v.astype(float).copy() for k, v in p.items()}
        self.n_patients = len(patients)
        self._precompute()

    # ------------------------------------------------------------------ outputs
    @property
    def basal_u_per_min(self) -> np.ndarray:
        """Steady-state basal insulin rate of each patient, U/min, shape ``(N,)``."""
        return self.patients.basal_u_per_min

    def plasma_glucose_mg_dl(self, state: PatientState) -> np.ndarray:
        """Plasma (blood) glucose ``Gp / Vg``, mg/dL, shape ``(N,)``."""
        return state.x[3] / self._p["Vg"]

    def subcutaneous_glucose_mg_dl(self, state: PatientState) -> np.ndarray:
        """Subcutaneous (interstitial) glucose ``Gs / Vg``, mg/dL, shape ``(N,)``.

        This is what a CGM measures and what simglucose reports as ``BG``.
        """
        return state.x[12] / self._p["Vg"]

    # ------------------------------------------------------------------ state
    def initial_state(
        self,
        rng: np.random.Generator | Sequence[np.random.Generator | None] | None = None,
    ) -> PatientState:
        """Steady-state initial condition of every patient.

        Parameters
        ----------
        rng : numpy.random.Generator or sequence of (Generator or None), optional
            When given, ``Gp``, ``Gt`` and ``Gs`` are drawn from independent normals with
            mean equal to the steady-state value and variance ``0.1 * value`` (the
            ``random_init_bg`` option of simglucose), one draw per patient.  A sequence
            holds one generator per patient (``None``: that patient keeps its steady
            state), so each patient's draw is independent of the rest of the batch.
        """
        x = self.patients.initial_state_x.astype(float).copy()
        glucose_rows = (3, 4, 12)
        if isinstance(rng, np.random.Generator):
            for i in glucose_rows:
                x[i] = rng.normal(x[i], np.sqrt(0.1 * x[i]))
        elif rng is not None:
            ok = isinstance(rng, Sequence) and len(rng) == self.n_patients
            if not ok or not all(g is None or isinstance(g, np.random.Generator) for g in rng):
                raise MetamedTypeError(
                    "rng must be a numpy.random.Generator (np.random.default_rng(seed)) or one "
                    f"Generator (or None) per patient ({self.n_patients}); received "
                    f"{type(rng).__name__}."
                )
            rows = list(glucose_rows)
            for j, g in enumerate(rng):
                if g is not None:
                    x[rows, j] += np.sqrt(0.1 * x[rows, j]) * g.standard_normal(3)
        n = self.n_patients
        return PatientState(
            x=x,
            planned_carbs_g=np.zeros(n),
            last_eaten_g=np.zeros(n),
            meal_start_qsto_mg=x[0] + x[1],
            meal_eaten_g=np.zeros(n),
            is_eating=np.zeros(n, dtype=bool),
            t_min=0,
        )

    # ------------------------------------------------------------------ dynamics
    def _check_input(self, value: np.ndarray | float, name: str, unit: str) -> np.ndarray:
        arr = np.broadcast_to(np.asarray(value, dtype=float), (self.n_patients,))
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise MetamedValueError(
                f"{name} must be finite and >= 0 ({unit}) for each of the {self.n_patients} "
                f"patients; received {_describe_bad(arr)}. Clip or fix the input."
            )
        return arr

    def step(
        self,
        state: PatientState,
        carbs_g: np.ndarray | float,
        insulin_u_per_min: np.ndarray | float,
    ) -> PatientState:
        """Advance every patient by one minute.

        Parameters
        ----------
        state : PatientState
            Current state (not modified).
        carbs_g : array_like, shape (N,) or scalar
            Carbohydrate announced at this minute, g; eaten at 5 g/min from now on.
        insulin_u_per_min : array_like, shape (N,) or scalar
            Insulin infusion rate held over this minute, U/min.

        Returns
        -------
        PatientState
            The state one minute later.
        """
        carbs = self._check_input(carbs_g, "carbs_g", "grams announced this minute")
        insulin = self._check_input(insulin_u_per_min, "insulin_u_per_min", "U/min")
        return self.step_unchecked(state, carbs, insulin)

    def step_unchecked(
        self, state: PatientState, carbs: np.ndarray, insulin: np.ndarray
    ) -> PatientState:
        """:meth:`step` without input validation (the simulation loops' hot path).

        ``carbs`` (g announced this minute) and ``insulin`` (U/min) must already be
        finite, non-negative float arrays of shape ``(N,)``; nothing is checked.
        """
        x = state.x
        if not (carbs.any() or state.planned_carbs_g.any() or state.last_eaten_g.any()):
            # Nobody is eating or about to: the meal bookkeeping is unchanged (fast path;
            # the same arrays are passed on, which also keeps the Dbar cache valid).
            planned = state.planned_carbs_g
            to_eat = state.last_eaten_g  # all zeros
            meal_start_qsto = state.meal_start_qsto_mg
            meal_eaten = state.meal_eaten_g
            is_eating = state.is_eating
        else:
            # Meal bookkeeping, in simglucose's order: announce -> eat at most EAT_RATE
            # -> detect meal start (reset Dbar's pieces) -> accumulate -> detect meal end.
            planned = state.planned_carbs_g + carbs
            to_eat = np.where(planned > 0, np.minimum(EAT_RATE_G_PER_MIN, planned), 0.0)
            planned = np.maximum(planned - to_eat, 0.0)
            starts = (to_eat > 0) & (state.last_eaten_g <= 0)
            meal_start_qsto = np.where(starts, x[0] + x[1], state.meal_start_qsto_mg)
            meal_eaten = np.where(starts, 0.0, state.meal_eaten_g)
            is_eating = state.is_eating | starts
            meal_eaten = np.where(is_eating, meal_eaten + to_eat, meal_eaten)
            is_eating = is_eating & ~((to_eat <= 0) & (state.last_eaten_g > 0))

        insulin_pmol_kg_min = insulin * self._pmol_per_kg_per_u
        gut = self._gut_constants(meal_start_qsto, meal_eaten)
        x_new = self._integrate_minute(x, to_eat * 1000.0, insulin_pmol_kg_min, gut)
        return PatientState(
            x=x_new,
            planned_carbs_g=planned,
            last_eaten_g=to_eat,
            meal_start_qsto_mg=meal_start_qsto,
            meal_eaten_g=meal_eaten,
            is_eating=is_eating,
            t_min=state.t_min + 1,
        )

    def advance_unchecked(
        self, state: PatientState, carbs: np.ndarray, insulin: np.ndarray
    ) -> PatientState:
        """Advance ``M`` minutes with the insulin rate held constant (one sensor period).

        Equivalent to ``M`` calls of :meth:`step_unchecked` with ``carbs[j]`` and the same
        ``insulin`` (to rounding, ~1e-12 relative), but one call of the compiled kernel
        :func:`metamed.dosing._kernel.advance_period` for the whole batch.  No input
        validation: ``carbs`` is a float array ``(M, N)`` of grams announced per minute,
        ``insulin`` a float array ``(N,)`` in U/min, both finite and non-negative.
        """
        x = state.x.copy()
        planned = state.planned_carbs_g.astype(float)
        last_eaten = state.last_eaten_g.astype(float)
        meal_start_qsto = state.meal_start_qsto_mg.astype(float)
        meal_eaten = state.meal_eaten_g.astype(float)
        is_eating = state.is_eating.astype(bool)
        kernel = _kernel.advance_period_parallel if self.parallel else _kernel.advance_period
        kernel(
            x,
            planned,
            last_eaten,
            meal_start_qsto,
            meal_eaten,
            is_eating,
            np.ascontiguousarray(carbs, dtype=float),
            np.ascontiguousarray(insulin, dtype=float),
            self._lane_table,
            self.substeps,
        )
        return PatientState(
            x=x,
            planned_carbs_g=planned,
            last_eaten_g=last_eaten,
            meal_start_qsto_mg=meal_start_qsto,
            meal_eaten_g=meal_eaten,
            is_eating=is_eating,
            t_min=state.t_min + carbs.shape[0],
        )

    def _gut_constants(
        self, meal_start_qsto: np.ndarray, meal_eaten: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gastric-emptying constants (slopes, centres), fixed within a minute.

        They change only while someone eats, so they are cached on the identity of the
        (never mutated) bookkeeping arrays; the cache holds references, so an identity
        match cannot be a recycled id.
        """
        cache = self._gut_cache
        if cache is not None and cache[0] is meal_start_qsto and cache[1] is meal_eaten:
            return cache[2]
        dbar = meal_start_qsto + meal_eaten * 1000.0
        consts = self._gut_constants_from_dbar(dbar)
        self._gut_cache = (meal_start_qsto, meal_eaten, consts)
        return consts

    def _gut_constants_from_dbar(self, dbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Returns slopes (a, c) and centres (b Dbar, d Dbar), each stacked as (2, N).
        # With Dbar <= 0 simglucose uses kgut = kmax; a = c = 0 gives exactly that.
        has_meal = dbar > 0
        safe_dbar = np.where(has_meal, dbar, 1.0)
        aa = np.where(has_meal, 2.5 / (safe_dbar * (1.0 - self._p["b"])), 0.0)
        cc = np.where(has_meal, 2.5 / (safe_dbar * self._p["d"]), 0.0)
        return np.stack((aa, cc)), np.stack((self._p["b"] * dbar, self._p["d"] * dbar))

    # Integration scheme (why it is split): states 5-11 (plasma/liver/subcutaneous insulin
    # and the insulin-action filters) obey a LINEAR system with constant coefficients,
    #     z' = A z + e_Isc1 * insulin + c,   c = -p2u * Ib on X,
    # and the input is held constant over the minute.  They are advanced with the exact
    # matrix-exponential propagator (precomputed per patient), which is both faster and
    # more accurate than Runge-Kutta.  The remaining states (stomach, gut, plasma/tissue
    # glucose, subcutaneous glucose) are nonlinear and use Kutta's RK3, reading X and Id
    # from the exact insulin solution at the stage times t, t+h/2, t+h.
    _LIN = (5, 6, 7, 8, 9, 10, 11)
    _NONLIN = (0, 1, 2, 3, 4, 12)
    _NONLIN_IDX = np.array(_NONLIN)

    def _precompute(self) -> None:
        p = self._p
        n = self.n_patients
        # Linear insulin subsystem in augmented form [z (7), insulin pmol/kg/min, 1].
        m = np.zeros((n, 9, 9))
        # rows/cols: 0 Ip, 1 X, 2 I1, 3 Id, 4 Il, 5 Isc1, 6 Isc2, 7 input, 8 one
        m[:, 0, 0] = -(p["m2"] + p["m4"])
        m[:, 0, 4] = p["m1"]
        m[:, 0, 5] = p["ka1"]
        m[:, 0, 6] = p["ka2"]
        m[:, 1, 1] = -p["p2u"]
        m[:, 1, 0] = p["p2u"] / p["Vi"]
        m[:, 1, 8] = -p["p2u"] * p["Ib"]
        m[:, 2, 2] = -p["ki"]
        m[:, 2, 0] = p["ki"] / p["Vi"]
        m[:, 3, 3] = -p["ki"]
        m[:, 3, 2] = p["ki"]
        m[:, 4, 4] = -(p["m1"] + p["m30"])
        m[:, 4, 0] = p["m2"]
        m[:, 5, 5] = -(p["ka1"] + p["kd"])
        m[:, 5, 7] = 1.0
        m[:, 6, 6] = -p["ka2"]
        m[:, 6, 5] = p["kd"]
        self._lin_matrix = m
        h = self.DT_MIN / self.substeps
        self._lin_half_full = _expm_batch(m * (0.5 * h))
        # Propagators to t+h/2 and t+h stacked: (N, 14, 9).
        self._lin_prop = np.concatenate(
            [_expm_batch(m * (0.5 * h))[:, :7, :], _expm_batch(m * h)[:, :7, :]], axis=1
        )
        self._h = h
        # Constants of the nonlinear right-hand side, each shape (N,).
        self._kmax = p["kmax"]
        self._kmin = p["kmin"]
        self._half_dk = 0.5 * (p["kmax"] - p["kmin"])
        self._kabs = p["kabs"]
        self._ra_coef = p["f"] * p["kabs"] / p["BW"]
        self._kp1, self._kp2, self._kp3 = p["kp1"], p["kp2"], p["kp3"]
        self._fsnc = p["Fsnc"]
        self._ke1, self._ke2 = p["ke1"], p["ke2"]
        self._k1, self._k2 = p["k1"], p["k2"]
        self._vm0, self._vmx, self._km0 = p["Vm0"], p["Vmx"], p["Km0"]
        self._ksc = p["ksc"]
        self._pmol_per_kg_per_u = PMOL_PER_U / p["BW"]
        # Linear couplings among the nonlinear-block states (rows/cols: Qsto1, Qsto2,
        # Qgut, Gp, Gt, Gs), shape (N, 6, 6).
        lin = np.zeros((n, 6, 6))
        lin[:, 0, 0] = -p["kmax"]
        lin[:, 1, 0] = p["kmax"]
        lin[:, 2, 2] = -p["kabs"]
        lin[:, 3, 2] = self._ra_coef
        lin[:, 3, 3] = -p["k1"]
        lin[:, 3, 4] = p["k2"]
        lin[:, 4, 3] = p["k1"]
        lin[:, 4, 4] = -p["k2"]
        lin[:, 5, 3] = p["ksc"]
        lin[:, 5, 5] = -p["ksc"]
        self._nl_lin = lin
        self._gut_cache = None
        # the compiled kernel's inputs: the half-sub-step propagator and one row of
        # constants per patient, both contiguous per patient
        half = self._lin_half_full[:, :7, :]
        structural = np.zeros((7, 9), dtype=bool)
        for row in _kernel.INSULIN_NONZERO:
            for r, col in row:
                structural[r, col] = True
        if np.any(half[:, ~structural] != 0.0):  # pragma: no cover - guards the kernel
            raise MetamedValueError(
                "The insulin propagator has entries the compiled kernel treats as zero; the "
                "model's insulin equations changed without metamed.dosing._kernel."
            )
        self._half_prop = np.ascontiguousarray(half)  # (N, 7, 9)
        named = {
            "kmax": p["kmax"],
            "half_dk": self._half_dk,
            "kabs": p["kabs"],
            "ra_coef": self._ra_coef,
            "kp1": p["kp1"],
            "kp2": p["kp2"],
            "kp3": p["kp3"],
            "fsnc": p["Fsnc"],
            "ke1": p["ke1"],
            "ke2": p["ke2"],
            "k1": p["k1"],
            "k2": p["k2"],
            "vm0": p["Vm0"],
            "vmx": p["Vmx"],
            "km0": p["Km0"],
            "ksc": p["ksc"],
            "b": p["b"],
            "d": p["d"],
            "pmol_per_kg_per_u": self._pmol_per_kg_per_u,
            "vg": p["Vg"],
        }
        self._kernel_constants = np.ascontiguousarray(
            np.stack([named[name] for name in _kernel.CONSTANTS], axis=1), dtype=float
        )
        # both, laid out for the kernel's blocks of SIMD lanes once, not every period
        self._lane_table = _kernel.lane_table(self._half_prop, self._kernel_constants)

    def _integrate_minute(
        self,
        x: np.ndarray,
        d: np.ndarray,
        ins: np.ndarray,
        gut: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        # Kutta's third-order method for the nonlinear block: its stages sit at t, t+h/2
        # and t+h, where the exact insulin solution is available.  Against simglucose it
        # is as accurate as classical RK4 (worst-patient error 0.015 vs 0.016 mg/dL, see
        # docs/dosing/simulator.md) with three instead of four evaluations.
        h = self._h
        y = x[self._NONLIN_IDX]
        z = x[5:12]
        aug = np.empty((9, self.n_patients))
        aug[7] = ins
        aug[8] = 1.0
        for _ in range(self.substeps):
            aug[:7] = z
            zz = np.einsum("nij,jn->in", self._lin_prop, aug)
            # X and Id at t, t+h/2, t+h (rows 1, 3 of z; 1, 3 and 8, 10 of zz).
            vm = self._vm0 + self._vmx * np.stack((z[1], zz[1], zz[8]))
            egp_base = self._kp1 - self._kp3 * np.stack((z[3], zz[3], zz[10]))
            k1 = self._rhs_nonlinear(y, vm[0], egp_base[0], d, gut)
            k2 = self._rhs_nonlinear(y + (0.5 * h) * k1, vm[1], egp_base[1], d, gut)
            k3 = self._rhs_nonlinear(y + h * (2.0 * k2 - k1), vm[2], egp_base[2], d, gut)
            y = y + (h / 6.0) * (k1 + 4.0 * k2 + k3)
            z = zz[7:]
        out = np.empty_like(x)
        out[self._NONLIN_IDX] = y
        out[5:12] = z
        return out

    def _rhs_nonlinear(
        self,
        y: np.ndarray,
        vm: np.ndarray,
        egp_base: np.ndarray,
        d: np.ndarray,
        gut: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        # y rows: Qsto1, Qsto2, Qgut, Gp, Gt, Gs (states 0, 1, 2, 3, 4, 12).
        # vm = Vm0 + Vmx * X and egp_base = kp1 - kp3 * Id at this stage's time.
        # The linear couplings (kmax, kabs, f*kabs/BW, k1, k2, ksc) are one batched
        # matrix product; the nonlinear terms are added row by row.
        slopes, centres = gut  # (2, N): (a, c) and (b * Dbar, d * Dbar)
        qsto2, gp, gt = y[1], y[3], y[4]
        th = np.tanh(slopes * ((y[0] + qsto2) - centres))
        kgut = self._kmax + self._half_dk * (th[0] - th[1])  # = kmin + dk/2 (... + 2)
        dy = np.einsum("nij,jn->in", self._nl_lin, y)
        dy[0] += d
        flow = kgut * qsto2
        dy[1] -= flow
        dy[2] += flow
        egp = np.maximum(egp_base - self._kp2 * gp, 0.0)
        renal = self._ke1 * np.maximum(gp - self._ke2, 0.0)
        dy[3] += egp - renal - self._fsnc
        dy[4] -= vm * gt / (self._km0 + gt)
        # simglucose freezes a glucose state that has gone negative.
        dy[3:] *= y[3:] >= 0
        return dy

    def derivatives(
        self,
        x: np.ndarray,
        eaten_g_per_min: np.ndarray,
        insulin_u_per_min: np.ndarray,
        dbar_mg: np.ndarray,
    ) -> np.ndarray:
        """Right-hand side ``dx/dt`` of all 13 states (reference form, for testing).

        Parameters
        ----------
        x : ndarray, shape (13, N)
        eaten_g_per_min : ndarray, shape (N,)
            Carbohydrate ingestion rate during the minute, g/min (at most 5).
        insulin_u_per_min : ndarray, shape (N,)
        dbar_mg : ndarray, shape (N,)
            ``Dbar`` of the gastric-emptying model, mg.

        Returns
        -------
        ndarray, shape (13, N)
        """
        x = np.asarray(x, dtype=float)
        ins = np.asarray(insulin_u_per_min, dtype=float) * PMOL_PER_U / self._p["BW"]
        dbar = np.asarray(dbar_mg, dtype=float)
        out = np.empty_like(x)
        out[self._NONLIN_IDX] = self._rhs_nonlinear(
            x[self._NONLIN_IDX],
            self._vm0 + self._vmx * x[6],
            self._kp1 - self._kp3 * x[8],
            np.asarray(eaten_g_per_min, dtype=float) * 1000.0,
            self._gut_constants_from_dbar(dbar),
        )
        aug = np.concatenate([x[5:12], ins[None], np.ones((1, x.shape[1]))])
        lin = np.einsum("nij,jn->in", self._lin_matrix, aug)[:7]
        # simglucose freezes these insulin states when negative (never the case here).
        lin[[0, 4, 5, 6]] *= x[[5, 9, 10, 11]] >= 0
        out[5:12] = lin
        return out

    def run(
        self,
        state: PatientState,
        carbs_g: np.ndarray,
        insulin_u_per_min: np.ndarray,
    ) -> tuple[PatientState, Trajectory]:
        """Open-loop simulation of ``T`` minutes.

        Parameters
        ----------
        state : PatientState
            Start state (not modified).
        carbs_g, insulin_u_per_min : array_like, shape (T, N)
            Per-minute inputs with the meaning of :meth:`step`.

        Returns
        -------
        final_state : PatientState
        trajectory : Trajectory
            Glucose at every minute, shape ``(T + 1, N)``.
        """
        carbs = np.asarray(carbs_g, dtype=float)
        insulin = np.asarray(insulin_u_per_min, dtype=float)
        n = self.n_patients
        if carbs.ndim != 2 or carbs.shape[1] != n or insulin.shape != carbs.shape:
            raise MetamedValueError(
                "run() expects carbs_g and insulin_u_per_min of equal shape (T, N) with "
                f"N={n} patients; received {carbs.shape} and {insulin.shape}."
            )
        for arr, name in ((carbs, "carbs_g"), (insulin, "insulin_u_per_min")):
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise MetamedValueError(
                    f"{name} must be finite and >= 0 everywhere; received {_describe_bad(arr)}."
                )
        n_min = carbs.shape[0]
        bg = np.empty((n_min + 1, n))
        sg = np.empty((n_min + 1, n))
        bg[0] = self.plasma_glucose_mg_dl(state)
        sg[0] = self.subcutaneous_glucose_mg_dl(state)
        for t in range(n_min):
            state = self.step_unchecked(state, carbs[t], insulin[t])
            bg[t + 1] = self.plasma_glucose_mg_dl(state)
            sg[t + 1] = self.subcutaneous_glucose_mg_dl(state)
        return state, Trajectory(plasma_glucose_mg_dl=bg, subcutaneous_glucose_mg_dl=sg)
