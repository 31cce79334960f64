"""Batched CGM sensor and insulin pump models (for simulated patients, not real people).

Both follow simglucose 0.2.11 (Jinyu Xie, MIT licence), whose device parameters are
reproduced below as named constants.

CGM noise (:class:`CGMSensor`): the model of Breton & Kovatchev (J Diabetes Sci Technol
2008) as implemented by simglucose.  For each patient a standard-normal AR(1) sequence is
drawn every 15 minutes (``e_0 ~ N(0, 1)``, ``e_k = PACF * (e_{k-1} + N(0, 1))``), mapped
through a Johnson S_U transform ``xi + lambda * sinh((e - gamma) / delta)`` (mg/dL),
and interpolated with a not-a-knot cubic spline to the sensor sample time, in blocks of
10 fifteen-minute points that start from the previous block's last point.  The reading
is ``clip(subcutaneous glucose + noise, min, max)``.  The distribution is simglucose's;
the random stream is not (we draw from a ``numpy.random.Generator``).

Insulin pump (:class:`InsulinPump`): as in simglucose, a rate in U/min is converted to
pmol/min (x6000), rounded to a multiple of the pump's increment, converted back and
clipped to ``[0, max]``.  Note that simglucose applies the 0.05 increment in pmol/min,
so the quantisation is below 1e-5 U/min and practically never changes a dose; we keep
that behaviour so closed-loop results match simglucose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from metamed.dosing.patient import PMOL_PER_U
from metamed.errors import MetamedTypeError, MetamedValueError, unknown_name

__all__ = [
    "CGM_SENSORS",
    "INSULIN_PUMPS",
    "CGMSensor",
    "CGMSensorParams",
    "InsulinPump",
    "InsulinPumpParams",
]


@dataclass(frozen=True)
class CGMSensorParams:
    """CGM sensor constants (simglucose ``params/sensor_params.csv``)."""

    name: str
    pacf: float  # lag-1 partial autocorrelation of the 15-min noise
    gamma: float  # Johnson S_U location of the normal variate
    lam: float  # Johnson S_U scale (mg/dL)
    delta: float  # Johnson S_U shape
    xi: float  # Johnson S_U location (mg/dL)
    sample_time_min: float
    min_mg_dl: float
    max_mg_dl: float


#: Sensors shipped with simglucose 0.2.11.
CGM_SENSORS: dict[str, CGMSensorParams] = {
    "Dexcom": CGMSensorParams("Dexcom", 0.7, -0.5444, 15.9574, 1.6898, -5.47, 3.0, 39.0, 600.0),
    "GuardianRT": CGMSensorParams(
        "GuardianRT", 0.7, -0.5444, 15.9574, 1.6898, -5.47, 5.0, 39.0, 600.0
    ),
    "Navigator": CGMSensorParams(
        "Navigator", 0.7, -0.5444, 15.9574, 1.6898, -5.47, 1.0, 32.0, 600.0
    ),
}

_NOISE_MODEL_STEP_MIN = 15.0  # the AR(1) noise lives on a 15-minute grid
_NOISE_BLOCK = 10  # fifteen-minute points drawn per interpolation block (simglucose)


@dataclass(frozen=True)
class InsulinPumpParams:
    """Insulin pump constants (simglucose ``params/pump_params.csv``); rates in U/min."""

    name: str
    min_bolus: float
    max_bolus: float
    inc_bolus: float
    min_basal: float
    max_basal: float
    inc_basal: float


#: Pumps shipped with simglucose 0.2.11.
INSULIN_PUMPS: dict[str, InsulinPumpParams] = {
    "Cozmo": InsulinPumpParams("Cozmo", 0.0, 75.0, 0.05, 0.0, 35.0, 0.05),
    "Insulet": InsulinPumpParams("Insulet", 0.0, 30.0, 0.05, 0.0, 30.0, 0.05),
}


def _valid_rng(rng: object, n_patients: int) -> bool:
    if isinstance(rng, np.random.Generator):
        return True
    return (
        isinstance(rng, Sequence)
        and len(rng) == n_patients
        and all(isinstance(g, np.random.Generator) for g in rng)
    )


def _interp_matrix(sample_time_min: float) -> np.ndarray:
    """Linear map from one block of 15-min noise points to the sensor-time samples."""
    t15 = np.arange(_NOISE_BLOCK + 1) * _NOISE_MODEL_STEP_MIN
    n_samples = int(np.floor(_NOISE_BLOCK * _NOISE_MODEL_STEP_MIN / sample_time_min)) + 1
    t = np.arange(n_samples) * sample_time_min
    spline = CubicSpline(t15, np.eye(len(t15)), axis=0, bc_type="not-a-knot")
    # The first sample (t=0) repeats the end of the previous block: drop it.
    return spline(t)[1:]


class CGMSensor:
    """Batched continuous glucose monitor with simglucose's noise model.

    Parameters
    ----------
    name : {"Dexcom", "GuardianRT", "Navigator"}, default "GuardianRT"
        Sensor type; sets the sample time (3, 5, 1 min) and the clipping range.
    n_patients : int
    rng : numpy.random.Generator or sequence of them, optional
        Source of the noise; required unless ``noise=False``.  One generator per patient
        (a sequence of length ``n_patients``) gives every patient its own noise stream,
        so a patient's readings do not depend on which other patients share the batch
        (used for paired comparisons, see :class:`~metamed.dosing.env.GlucoseVectorEnv`).
    noise : bool, default True
        ``False`` gives a noise-free sensor (clipped subcutaneous glucose).

    Notes
    -----
    Call :meth:`measure` once per sample time (every ``sample_time_min`` minutes of
    simulated time); each call consumes the next noise value of every patient.
    """

    def __init__(
        self,
        name: str = "GuardianRT",
        n_patients: int = 1,
        rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
        noise: bool = True,
    ) -> None:
        if name not in CGM_SENSORS:
            raise unknown_name("CGM sensor", name, CGM_SENSORS)
        if not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
            raise MetamedValueError(
                f"n_patients must be a positive integer; received {n_patients!r}."
            )
        if noise and not _valid_rng(rng, int(n_patients)):
            raise MetamedTypeError(
                "A noisy CGMSensor needs rng=np.random.default_rng(seed) (numpy Generator) or "
                f"one Generator per patient ({n_patients}); received {type(rng).__name__}. "
                "Pass noise=False for a noise-free sensor."
            )
        self.params = CGM_SENSORS[name]
        self.n_patients = int(n_patients)
        self.noise = bool(noise)
        self._rng = rng
        self._weights = _interp_matrix(self.params.sample_time_min)
        self.reset()

    @property
    def sample_time_min(self) -> float:
        """Minutes between readings."""
        return self.params.sample_time_min

    def reset(self, rng: np.random.Generator | Sequence[np.random.Generator] | None = None) -> None:
        """Restart the noise process (optionally with a new generator)."""
        if rng is not None:
            self._rng = rng
        self._queue = np.empty((0, self.n_patients))
        self._e: np.ndarray | None = None  # current AR(1) normal variate per patient
        self._last_eps: np.ndarray | None = None

    def _johnson(self, e: np.ndarray) -> np.ndarray:
        p = self.params
        return p.xi + p.lam * np.sinh((e - p.gamma) / p.delta)

    def _normals(self, k: int) -> np.ndarray:
        """``k`` standard normals per patient, shape ``(k, N)``."""
        rng = self._rng
        assert rng is not None
        if isinstance(rng, np.random.Generator):
            return rng.standard_normal((k, self.n_patients))
        # one stream per patient: its draws never depend on the rest of the batch
        return np.stack([g.standard_normal(k) for g in rng], axis=1)

    def _next_blocks(self, m: int = 1) -> np.ndarray:
        """The next ``m`` blocks of sensor-time noise, shape ``(m * samples, N)``.

        The normals of all ``m`` blocks are drawn in one call per generator: a
        generator's draws are the same whether taken in one call or block by block, so
        the values do not depend on ``m``; only the per-call cost does (one call per
        patient per block dominated the vector environment's step).
        """
        p = self.params
        first = self._e is None
        z = self._normals(_NOISE_BLOCK * m + int(first))
        if self._e is None:
            self._e = z[0]
            self._last_eps = self._johnson(z[0])
            z = z[1:]
        e15 = np.empty((_NOISE_BLOCK * m + 1, self.n_patients))
        e15[0] = self._last_eps
        e = self._e
        for k in range(1, _NOISE_BLOCK * m + 1):
            e = p.pacf * (e + z[k - 1])
            e15[k] = self._johnson(e)
        self._e = e
        self._last_eps = e15[-1]
        return np.concatenate(
            [self._weights @ e15[b * _NOISE_BLOCK : (b + 1) * _NOISE_BLOCK + 1] for b in range(m)]
        )

    def noise_mg_dl(self) -> np.ndarray:
        """Next additive noise value of every patient, mg/dL, shape ``(N,)``."""
        return self.noise_ahead_mg_dl(1)[0]

    def noise_ahead_mg_dl(self, k: int) -> np.ndarray:
        """The next ``k`` noise values of every patient, mg/dL, shape ``(k, N)``.

        The same values as ``k`` calls of :meth:`noise_mg_dl`, in one batch.
        """
        if not self.noise:
            return np.zeros((k, self.n_patients))
        short = k - self._queue.shape[0]
        if short > 0:
            per_block = self._weights.shape[0]
            fresh = self._next_blocks(-(-short // per_block))
            self._queue = np.concatenate([self._queue, fresh])
        out, self._queue = self._queue[:k], self._queue[k:]
        return out

    def measure(self, subcutaneous_glucose_mg_dl: np.ndarray) -> np.ndarray:
        """One CGM reading per patient, mg/dL, shape ``(N,)``."""
        g = np.asarray(subcutaneous_glucose_mg_dl, dtype=float)
        if g.shape != (self.n_patients,):
            raise MetamedValueError(
                f"measure() expects glucose of shape ({self.n_patients},); received {g.shape}."
            )
        return np.clip(g + self.noise_mg_dl(), self.params.min_mg_dl, self.params.max_mg_dl)


class InsulinPump:
    """Batched insulin pump: quantisation and rate limits as simglucose.

    Parameters
    ----------
    name : {"Insulet", "Cozmo"}, default "Insulet"
    """

    def __init__(self, name: str = "Insulet") -> None:
        if name not in INSULIN_PUMPS:
            raise unknown_name("insulin pump", name, INSULIN_PUMPS)
        self.params = INSULIN_PUMPS[name]

    @staticmethod
    def _quantise(
        rate_u_per_min: np.ndarray | float, inc: float, lo: float, hi: float
    ) -> np.ndarray:
        rate = np.asarray(rate_u_per_min, dtype=float)
        if not np.all(np.isfinite(rate)):
            raise MetamedValueError(
                f"Insulin rate must be finite (U/min); received {int(np.sum(~np.isfinite(rate)))} "
                "non-finite values."
            )
        pmol = np.round(rate * PMOL_PER_U / inc) * inc
        return np.clip(pmol / PMOL_PER_U, lo, hi)

    def basal(self, rate_u_per_min: np.ndarray | float) -> np.ndarray:
        """Delivered basal rate, U/min (negative requests deliver 0)."""
        p = self.params
        return self._quantise(rate_u_per_min, p.inc_basal, p.min_basal, p.max_basal)

    def bolus(self, rate_u_per_min: np.ndarray | float) -> np.ndarray:
        """Delivered bolus rate, U/min (a bolus of B units in one minute is B U/min)."""
        p = self.params
        return self._quantise(rate_u_per_min, p.inc_bolus, p.min_bolus, p.max_bolus)

    def deliver(
        self, basal_u_per_min: np.ndarray | float, bolus_u_per_min: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """Total delivered insulin rate ``basal + bolus``, U/min."""
        return self.basal(basal_u_per_min) + self.bolus(bolus_u_per_min)
