"""Personalised insulin dosing: meta-learned model, adapted from a few days of records.

Method (a hierarchical, model-based meta-learner)
-------------------------------------------------
A glucose-dynamics model is shared across patients; each patient has four coefficients
``theta = (ISF, CSF, c, k)`` in the rate equation, at CGM resolution::

    dG/dt = -ISF * (G / 120) * (a_I * insulin)(t) + CSF * (a_C * carbs)(t) + c - k * (G - 120)

``a_I`` and ``a_C`` are normalised insulin-action and carbohydrate-absorption curves
(``t exp(-t / tau)``, peak at ``tau``), so ISF is the total glucose drop per unit of
insulin (mg/dL per U), CSF the total rise per gram (mg/dL per g), ``c`` the insulin-free
glucose drift (mg/dL per h; endogenous production minus insulin-independent uptake) and
``k`` glucose effectiveness (1/h).  The insulin effect is scaled by ``G / 120`` because
insulin-dependent glucose uptake is proportional to glucose in the UVA/Padova model (and
in physiology, far from saturation); this one change cut the leave-one-out error of the
carbohydrate-ratio estimate by 40 %.  The model is linear in ``theta``: it is fitted on
30-minute glucose changes against the window-integrated features.

Meta-training on the training patients' records learns what is shared:

1. the curve peaks ``tau_I``, ``tau_C`` (grid search on the pooled fit),
2. a Gaussian prior over ``theta`` (mean per age group, pooled covariance, residual
   noise variance): empirical Bayes,
3. a calibration from a patient's evidence to therapy parameters: ridge regression
   (penalty chosen by exact leave-one-out error) of ``log(Quest parameter) - age-group
   mean`` on the patient's within-group-standardised features: the model quantities
   ``log ISF`` (CF-like), ``log(ISF / CSF)`` (CR-like) and ``log(c / ISF)`` (the
   steady-state insulin need, basal-like) from the MAP fit (optionally also record
   summaries, see below).

Adapting to a new patient is closed form: the posterior mean (MAP) of ``theta`` given
the patient's own 1-3 days of CGM, insulin and meal records under the learned prior,
then the calibration.  With no data every feature sits at its group mean, so 0 days
gives the age group's population values (geometric mean of the training patients'
parameters).  By default the calibration uses the three model quantities and the records'
fasting drift (mean glucose change per hour with no carbohydrate in the previous 5
hours): the model's basal-like quantity hardly predicts the basal rate, while the drift
under the recording basal does, and a basal left too low let one child's glucose climb
overnight until the breakfast correction took it below 40 mg/dL
(``docs/results/dosing.md``, safety section).  The drift depends on the therapy that
produced the records, so meta-training and adaptation records must come from the same
starting therapy (the age group's population therapy in :func:`leave_patients_out`);
``fasting_drift=False`` gives the variant that does not depend on it.  Optionally
(``summary_features=True``) five record summaries (:func:`record_summary`: mean CGM, time
below 70, post-meal excursion per gram, fasting drift, insulin per day) are added; in the
leave-patients-out benchmark that variant was within run-to-run noise of the three model
quantities alone (``docs/results/dosing.md``, ablation).
Windows are non-overlapping so the likelihood does not over-count correlated changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from metamed.dosing.controllers import BasalBolusController
from metamed.dosing.env import GlucoseVectorEnv, SimulationResult, rollout
from metamed.dosing.patient import VirtualPatients, load_virtual_patients
from metamed.errors import MetamedValueError, NotFittedError

__all__ = [
    "PatientRecords",
    "TherapyParameters",
    "action_curve",
    "design_matrix",
    "TherapyPersonaliser",
    "LeavePatientsOutResult",
    "leave_patients_out",
    "quest_parameters",
    "records_from_simulation",
    "stratified_folds",
    "record_summary",
]

# Centre of the glucose-effectiveness term, mg/dL (the middle of the 70-180 target range
# rounded down; it only shifts ``c`` and has no clinical meaning of its own).
_G_REFERENCE_MG_DL = 120.0
# Duration over which action curves are evaluated (insulin acts for ~5-6 h after a
# subcutaneous bolus; a 12 h support keeps > 97 % of the ``t exp(-t/tau)`` mass for tau <= 150 min).
_CURVE_DURATION_MIN = 720.0


@dataclass(frozen=True)
class PatientRecords:
    """A batch of patients' device records on the CGM grid.

    Attributes
    ----------
    cgm_mg_dl : numpy.ndarray, shape (n_patients, n_samples)
        Sensor glucose readings; ``cgm_mg_dl[:, k]`` is read at the end of period ``k``.
    insulin_u : numpy.ndarray, shape (n_patients, n_samples)
        Insulin delivered during each sample period, U (basal + bolus).
    carbs_g : numpy.ndarray, shape (n_patients, n_samples)
        Carbohydrate logged as eaten in each sample period, g.
    sample_time_min : float
        CGM sample period.
    """

    cgm_mg_dl: np.ndarray
    insulin_u: np.ndarray
    carbs_g: np.ndarray
    sample_time_min: float

    def __post_init__(self) -> None:
        shape = np.shape(self.cgm_mg_dl)
        if len(shape) != 2 or np.shape(self.insulin_u) != shape or np.shape(self.carbs_g) != shape:
            raise MetamedValueError(
                "PatientRecords arrays must all have shape (n_patients, n_samples); received "
                f"{np.shape(self.cgm_mg_dl)}, {np.shape(self.insulin_u)}, {np.shape(self.carbs_g)}."
            )
        if self.sample_time_min <= 0:
            raise MetamedValueError(
                f"sample_time_min must be > 0; received {self.sample_time_min}."
            )

    @property
    def n_patients(self) -> int:
        return int(np.shape(self.cgm_mg_dl)[0])

    def first_days(self, days: float) -> PatientRecords:
        """The records restricted to the first ``days`` days (0 gives an empty record)."""
        n = int(round(days * 1440.0 / self.sample_time_min))
        return PatientRecords(
            np.asarray(self.cgm_mg_dl)[:, :n],
            np.asarray(self.insulin_u)[:, :n],
            np.asarray(self.carbs_g)[:, :n],
            self.sample_time_min,
        )

    def subset(self, idx: np.ndarray | list[int]) -> PatientRecords:
        idx = np.asarray(idx, dtype=int)
        return PatientRecords(
            np.asarray(self.cgm_mg_dl)[idx],
            np.asarray(self.insulin_u)[idx],
            np.asarray(self.carbs_g)[idx],
            self.sample_time_min,
        )


@dataclass(frozen=True)
class TherapyParameters:
    """Per-patient therapy parameters for :class:`~metamed.dosing.controllers.BasalBolusController`."""

    basal_u_per_h: np.ndarray
    carb_ratio_g_per_u: np.ndarray
    correction_factor_mg_dl_per_u: np.ndarray

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "basal_u_per_h": np.asarray(self.basal_u_per_h).tolist(),
            "carb_ratio_g_per_u": np.asarray(self.carb_ratio_g_per_u).tolist(),
            "correction_factor_mg_dl_per_u": np.asarray(
                self.correction_factor_mg_dl_per_u
            ).tolist(),
        }


def action_curve(peak_min: float, sample_time_min: float) -> np.ndarray:
    """Normalised ``t exp(-t / peak)`` action curve on the sample grid (sums to 1).

    Entry ``j`` is the fraction of the total effect of a dose given in sample period 0
    that acts during sample period ``j``.
    """
    if peak_min <= 0:
        raise MetamedValueError(f"peak_min must be > 0 minutes; received {peak_min}.")
    t = (np.arange(int(_CURVE_DURATION_MIN / sample_time_min)) + 0.5) * sample_time_min
    w = t * np.exp(-t / peak_min)
    return w / w.sum()


def _causal_filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Row-wise causal convolution ``y[t] = sum_j kernel[j] x[t - j]`` (same length)."""
    n = x.shape[1]
    out = np.zeros_like(x, dtype=float)
    for j, w in enumerate(kernel[:n]):
        if j == 0:
            out += w * x
        else:
            out[:, j:] += w * x[:, :-j]
    return out


def design_matrix(
    records: PatientRecords,
    insulin_peak_min: float,
    carb_peak_min: float,
    window_min: float = 30.0,
    warmup_min: float = 240.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of the linear glucose model, per patient.

    Returns
    -------
    X : numpy.ndarray, shape (n_patients, n_windows, 4)
        Window-integrated ``[-insulin effect (U), carb effect (g), duration (h),
        -(G - 120) * duration (mg/dL h)]`` for non-overlapping windows.
    y : numpy.ndarray, shape (n_patients, n_windows)
        Glucose change over each window, mg/dL.  Windows that start before
        ``warmup_min`` (unknown insulin/carbs before the record) are dropped.
    """
    dt = records.sample_time_min
    w = max(1, int(round(window_min / dt)))
    cgm = np.asarray(records.cgm_mg_dl, dtype=float)
    n_p, n_s = cgm.shape
    cgm_filled = np.nan_to_num(cgm, nan=_G_REFERENCE_MG_DL)
    start = int(np.ceil(warmup_min / dt))
    starts = np.arange(start, n_s - w, w)
    if starts.size == 0:
        return np.zeros((n_p, 0, 4)), np.zeros((n_p, 0))
    ins_eff = _causal_filter(
        np.asarray(records.insulin_u, float), action_curve(insulin_peak_min, dt)
    )
    carb_eff = _causal_filter(np.asarray(records.carbs_g, float), action_curve(carb_peak_min, dt))
    cum_i = np.concatenate([np.zeros((n_p, 1)), np.cumsum(ins_eff, axis=1)], axis=1)
    cum_c = np.concatenate([np.zeros((n_p, 1)), np.cumsum(carb_eff, axis=1)], axis=1)
    dur_h = w * dt / 60.0
    X = np.empty((n_p, starts.size, 4))
    # cgm[k] is the reading at the END of sample period k, so the change
    # cgm[s + w] - cgm[s] is driven by the effects acting in periods s + 1 .. s + w
    # insulin-dependent glucose uptake is proportional to glucose (Michaelis-Menten far
    # from saturation in the UVA/Padova model), so the insulin effect is scaled by G / 120
    g_scale = np.clip(cgm_filled[:, starts], 40.0, 400.0) / _G_REFERENCE_MG_DL
    X[:, :, 0] = -(cum_i[:, starts + w + 1] - cum_i[:, starts + 1]) * g_scale
    X[:, :, 1] = cum_c[:, starts + w + 1] - cum_c[:, starts + 1]
    X[:, :, 2] = dur_h
    X[:, :, 3] = -(cgm_filled[:, starts] - _G_REFERENCE_MG_DL) * dur_h
    y = cgm[:, starts + w] - cgm[:, starts]
    # windows with a missing reading (e.g. after an episode ended) carry no information:
    # zero rows drop out of X^T X and X^T y
    ok = np.isfinite(y) & np.isfinite(cgm[:, starts])
    X = np.where(ok[:, :, None], X, 0.0)
    y = np.where(ok, y, 0.0)
    return X, y


def _therapy_quantities(theta: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """log(CF-like, CR-like, basal-like) from theta rows ``(ISF, CSF, c, k)``.

    ``floor`` (3,) bounds the raw quantities below so that a poorly identified patient
    (e.g. a negative ISF estimate from one day of data) maps to a small positive value.
    """
    isf = np.maximum(theta[:, 0], floor[0])
    csf = np.maximum(theta[:, 1], 1e-6)
    raw = np.stack([isf, isf / csf, np.maximum(theta[:, 2], 0.0) / isf], axis=1)
    return np.log(np.maximum(raw, floor[None, :]))


@dataclass
class TherapyPersonaliser:
    """Meta-learned personalisation of basal-bolus therapy parameters.

    Parameters
    ----------
    insulin_peaks_min, carb_peaks_min : tuple of float
        Grids for the shared action-curve peaks, chosen by meta-training.
    window_min : float
        Length of the glucose-change windows.
    prior_scale : float
        Multiplies the learned prior covariance (1 = empirical Bayes; larger trusts the
        patient's own data more).
    summary_features : bool
        Whether the calibration also uses :func:`record_summary` statistics.
    fasting_drift : bool
        Whether the calibration also uses the fasting drift of the records (mean glucose
        change per hour with no carbohydrate in the previous 5 hours, the quantity a
        clinician titrates a basal rate by).  The model's own basal-like quantity hardly
        moves the calibrated basal; the drift under the recording basal does
        (``tests/dosing/test_fasting_drift.py`` checks that it brings the children's
        basal closer to their Quest basal).  Like the summaries, it ties the model to the
        therapy used while recording: meta-training and adaptation records must come
        from the same starting therapy, as in :func:`leave_patients_out`.  Implied by
        ``summary_features``.
    ridge_alphas : tuple of float
        Ridge penalties tried for the calibration (chosen by leave-one-out).

    Attributes (after :meth:`meta_fit`)
    -----------------------------------
    insulin_peak_min_, carb_peak_min_ : float
    prior_mean_ : dict of age group to numpy.ndarray (4,)
    prior_cov_ : numpy.ndarray (4, 4)
    noise_var_ : float
        Residual variance of a window's glucose change, (mg/dL)^2.
    pop_log_ : dict of age group to numpy.ndarray (3,)
        Log geometric-mean (CF, CR, basal) of the group's training patients.
    coef_ : numpy.ndarray (n_features, 3)
        Calibration ridge coefficients on standardised features.
    loo_rmse_ : numpy.ndarray (3,)
        Leave-one-out RMSE of the calibrated log (CF, CR, basal) over the training
        patients: the spread of a new patient's true parameter around its estimate,
        which :meth:`adapt` uses for a cautious choice (``risk_aversion``).
    """

    insulin_peaks_min: tuple[float, ...] = (50.0, 75.0, 100.0, 130.0, 160.0)
    carb_peaks_min: tuple[float, ...] = (20.0, 35.0, 50.0, 70.0)
    window_min: float = 30.0
    prior_scale: float = 1.0
    # Fitted state: NaN and empty arrays until meta_fit (typed without None, so the
    # methods that run after _check_fitted need no narrowing).
    insulin_peak_min_: float = field(default=math.nan, init=False)
    carb_peak_min_: float = field(default=math.nan, init=False)
    prior_mean_: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    prior_cov_: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), init=False)
    noise_var_: float = field(default=math.nan, init=False)
    summary_features: bool = False
    fasting_drift: bool = True
    ridge_alphas: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    floor_: np.ndarray = field(default_factory=lambda: np.empty(0), init=False)
    feature_mean_: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    feature_scale_: np.ndarray = field(default_factory=lambda: np.empty(0), init=False)
    pop_log_: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    coef_: np.ndarray = field(default_factory=lambda: np.empty((0, 3)), init=False)
    ridge_alpha_: np.ndarray = field(default_factory=lambda: np.empty(0), init=False)
    loo_rmse_: np.ndarray = field(default_factory=lambda: np.empty(0), init=False)

    # ------------------------------------------------------------------ meta-training
    def meta_fit(
        self,
        records: PatientRecords,
        age_groups: list[str] | tuple[str, ...],
        therapy: TherapyParameters,
    ) -> TherapyPersonaliser:
        """Learn the shared curves, the prior and the calibration from training patients."""
        groups = np.asarray(age_groups)
        if groups.shape[0] != records.n_patients:
            raise MetamedValueError(
                f"age_groups has {groups.shape[0]} entries; records have {records.n_patients} patients."
            )
        if self.prior_scale <= 0 or self.window_min <= 0:
            raise MetamedValueError(
                f"prior_scale and window_min must be > 0; received {self.prior_scale}, {self.window_min}."
            )
        best = None
        for tau_i in self.insulin_peaks_min:
            for tau_c in self.carb_peaks_min:
                X, y = design_matrix(records, tau_i, tau_c, self.window_min)
                theta, sse = self._per_patient_ols(X, y)
                if best is None or sse < best[0]:
                    best = (sse, tau_i, tau_c, theta, X, y)
        assert best is not None
        sse, self.insulin_peak_min_, self.carb_peak_min_, theta, X, y = best
        n_obs = X.shape[0] * X.shape[1]
        self.noise_var_ = float(sse / max(n_obs - 4 * X.shape[0], 1))
        self.prior_mean_ = {g: theta[groups == g].mean(axis=0) for g in np.unique(groups)}
        centred = theta - np.stack([self.prior_mean_[g] for g in groups])
        # pooled within-group covariance, with a small ridge so it is always invertible
        cov = centred.T @ centred / max(len(groups) - len(self.prior_mean_), 1)
        self.prior_cov_ = cov + 1e-6 * np.diag(np.diag(cov) + 1e-9)
        # calibration: raw quantities from the shrunk (MAP) estimates, as at adaptation time
        theta_map = self._posterior_mean(X, y, groups)
        pos = np.stack(list(self.prior_mean_.values()))
        self.floor_ = np.array([0.2 * pos[:, 0].min(), 1.0, 0.05])
        features = self._features(records, theta_map)
        target = np.log(
            np.stack(
                [
                    np.asarray(therapy.correction_factor_mg_dl_per_u, float),
                    np.asarray(therapy.carb_ratio_g_per_u, float),
                    np.asarray(therapy.basal_u_per_h, float),
                ],
                axis=1,
            )
        )
        # Within-group centring: the intercept of each age group is its geometric-mean
        # parameter (0 days of data = population average); the pooled ridge slopes say how
        # far a patient's own evidence moves it.
        self.feature_mean_ = {}
        self.pop_log_ = {}
        dF = np.empty_like(features)
        dY = np.empty_like(target)
        for g in self.prior_mean_:
            sel = groups == g
            self.feature_mean_[g] = np.nanmean(features[sel], axis=0)
            self.pop_log_[g] = target[sel].mean(axis=0)
            dF[sel] = features[sel] - self.feature_mean_[g]
            dY[sel] = target[sel] - self.pop_log_[g]
        dF = np.nan_to_num(dF, nan=0.0)
        self.feature_scale_ = np.maximum(dF.std(axis=0), 1e-9)
        Z = dF / self.feature_scale_
        self.coef_, self.ridge_alpha_, self.loo_rmse_ = _ridge_loo(Z, dY, self.ridge_alphas)
        return self

    def _features(self, records: PatientRecords, theta: np.ndarray) -> np.ndarray:
        raw = _therapy_quantities(theta, self.floor_)
        if self.summary_features:
            return np.concatenate([raw, record_summary(records)], axis=1)
        if self.fasting_drift:
            drift = record_summary(records)[:, _FASTING_DRIFT]
            return np.concatenate([raw, drift[:, None]], axis=1)
        return raw

    @staticmethod
    def _per_patient_ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        theta = np.empty((X.shape[0], X.shape[2]))
        sse = 0.0
        for i in range(X.shape[0]):
            sol, *_ = np.linalg.lstsq(X[i], y[i], rcond=None)
            theta[i] = sol
            sse += float(np.sum((y[i] - X[i] @ sol) ** 2))
        return theta, sse

    def _check_fitted(self) -> None:
        if self.prior_cov_.size == 0:
            raise NotFittedError(
                "TherapyPersonaliser is not meta-trained; call meta_fit(records, age_groups, "
                "therapy) on training patients first."
            )

    def _posterior_mean(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
        prec0 = np.linalg.inv(self.prior_cov_ * self.prior_scale)
        out = np.empty((X.shape[0], 4))
        for i, g in enumerate(groups):
            mu0 = self.prior_mean_[str(g)]
            a = prec0 + X[i].T @ X[i] / self.noise_var_
            b = prec0 @ mu0 + X[i].T @ y[i] / self.noise_var_
            out[i] = np.linalg.solve(a, b)
        return out

    # ------------------------------------------------------------------ adaptation
    def adapt(
        self,
        records: PatientRecords | None,
        age_groups: list[str] | tuple[str, ...],
        risk_aversion: float = 0.0,
    ) -> TherapyParameters:
        """Therapy parameters for new patients from their own records (or none: prior).

        ``risk_aversion`` = z > 0 gives a cautious choice instead of the estimate: the
        log correction factor and log carbohydrate ratio move z leave-one-out RMSEs
        (:attr:`loo_rmse_`) up, toward smaller boluses; the basal rate keeps its
        estimate (see ``_CAUTIOUS_DIRECTION``).  Under the calibration's error, roughly normal
        on the log scale, the patient's true ratio is then at most the chosen one with
        probability Phi(z) (84 % at z = 1).  The two errors are not symmetric for a
        patient: too large a bolus brings severe hypoglycaemia within hours, too small
        a one hyperglycaemia that the next corrections can still catch.  With no
        records (population values) the estimate is returned unchanged.
        """
        self._check_fitted()
        if not (np.isfinite(risk_aversion) and risk_aversion >= 0):
            raise MetamedValueError(
                f"risk_aversion must be a finite number >= 0 (0 = the estimate itself); "
                f"received {risk_aversion!r}."
            )
        groups = np.asarray(age_groups)
        unknown = sorted(set(groups.tolist()) - set(self.prior_mean_))
        if unknown:
            raise MetamedValueError(
                f"Age groups {unknown} were not seen in meta-training (known: "
                f"{sorted(self.prior_mean_)}); meta-train with patients of those groups."
            )
        if records is None:
            X = np.zeros((groups.shape[0], 0, 4))
            y = np.zeros((groups.shape[0], 0))
        else:
            if records.n_patients != groups.shape[0]:
                raise MetamedValueError(
                    f"records have {records.n_patients} patients but {groups.shape[0]} age groups were given."
                )
            X, y = design_matrix(
                records, self.insulin_peak_min_, self.carb_peak_min_, self.window_min
            )
        theta = self._posterior_mean(X, y, groups)
        features = self._features(records, theta) if records is not None else None
        params = np.empty((groups.shape[0], 3))
        for i, g in enumerate(groups):
            g = str(g)
            dev = np.zeros(self.coef_.shape[0])
            # a patient without a single usable window has no evidence: population values
            if features is not None and np.any(X[i] != 0):
                dev = np.nan_to_num((features[i] - self.feature_mean_[g]) / self.feature_scale_)
                # evidence beyond the training range is not extrapolated
                dev = np.clip(dev, -3.0, 3.0)
                # toward smaller boluses: log CF and log CR up, the basal as estimated
                caution = risk_aversion * self.loo_rmse_ * _CAUTIOUS_DIRECTION
            else:
                caution = np.zeros(3)
            params[i] = np.exp(self.pop_log_[g] + dev @ self.coef_ + caution)
        return TherapyParameters(
            basal_u_per_h=params[:, 2],
            carb_ratio_g_per_u=params[:, 1],
            correction_factor_mg_dl_per_u=params[:, 0],
        )

    def population(self, age_groups: list[str] | tuple[str, ...]) -> TherapyParameters:
        """Population-average parameters of each patient's age group (0 days of data)."""
        return self.adapt(None, age_groups)

    def save(self, path: str | Path) -> None:
        """Write the meta-trained state as JSON."""
        self._check_fitted()
        state = {
            "insulin_peak_min": self.insulin_peak_min_,
            "carb_peak_min": self.carb_peak_min_,
            "window_min": self.window_min,
            "prior_scale": self.prior_scale,
            "prior_mean": {g: v.tolist() for g, v in self.prior_mean_.items()},
            "prior_cov": self.prior_cov_.tolist(),
            "noise_var": self.noise_var_,
            "summary_features": self.summary_features,
            "fasting_drift": self.fasting_drift,
            "floor": self.floor_.tolist(),
            "feature_mean": {g: v.tolist() for g, v in self.feature_mean_.items()},
            "feature_scale": self.feature_scale_.tolist(),
            "pop_log": {g: v.tolist() for g, v in self.pop_log_.items()},
            "coef": self.coef_.tolist(),
            "ridge_alpha": self.ridge_alpha_.tolist(),
            "loo_rmse": self.loo_rmse_.tolist(),
        }
        Path(path).write_text(json.dumps(state, indent=1))


def _ridge_loo(
    Z: np.ndarray, Y: np.ndarray, alphas: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge coefficients per target column, alpha chosen by exact leave-one-out error.

    Returns the coefficients, the chosen alphas and each column's leave-one-out RMSE
    (the error of a prediction for a patient the fit has not seen).
    """
    n, m = Z.shape
    coef = np.zeros((m, Y.shape[1]))
    chosen = np.zeros(Y.shape[1])
    loo_rmse = np.zeros(Y.shape[1])
    for j in range(Y.shape[1]):
        best = None
        for alpha in alphas:
            a = Z.T @ Z + alpha * np.eye(m)
            hat = Z @ np.linalg.solve(a, Z.T)
            beta = np.linalg.solve(a, Z.T @ Y[:, j])
            resid = (Y[:, j] - Z @ beta) / np.maximum(1.0 - np.diag(hat), 1e-6)
            err = float(np.mean(resid**2))
            if best is None or err < best[0]:
                best = (err, alpha, beta)
        assert best is not None
        loo_rmse[j] = np.sqrt(best[0])
        _, chosen[j], coef[:, j] = best
    return coef, chosen, loo_rmse


#: Suffix of the leave-patients-out keys of the cautious (risk-averse) parameters.
CAUTIOUS = "_cautious"

# Direction of the cautious choice for log (CF, CR, basal): a larger correction factor and
# carbohydrate ratio give smaller boluses.  The basal rate keeps its estimate: a lower
# basal lets glucose climb overnight (child#004, traced by hand: from 132 to about
# 300 mg/dL by breakfast), and the breakfast bolus with its correction then took it
# below 40 mg/dL, so a cautious basal moved the hypoglycaemia instead of removing it
# (docs/results/dosing.md, safety section).
_CAUTIOUS_DIRECTION = np.array([1.0, 1.0, 0.0])

# Column of the fasting drift in record_summary's output.
_FASTING_DRIFT = 3

# Meals of at least this size enter the post-meal excursion statistic (smaller snacks
# give a noisy per-gram ratio).
_MIN_MEAL_G = 20.0


def record_summary(records: PatientRecords) -> np.ndarray:
    """Five summary statistics of each patient's records, shape (n_patients, 5).

    Mean CGM (mg/dL); fraction of readings below 70 mg/dL; mean 4-hour glucose change
    after meals of >= 20 g, per gram (mg/dL per g); fasting drift (mg/dL per h, mean
    30-minute change in windows with no carbohydrate in the previous 5 hours); log of
    mean insulin delivered per day (U).  NaN where a statistic has no data.
    """
    cgm = np.asarray(records.cgm_mg_dl, float)
    carbs = np.asarray(records.carbs_g, float)
    ins = np.asarray(records.insulin_u, float)
    dt = records.sample_time_min
    n, t_len = cgm.shape
    out = np.full((n, 5), np.nan)
    after = int(round(240 / dt))
    fast = int(round(300 / dt))
    w = int(round(30 / dt))
    for i in range(n):
        c = cgm[i]
        ok = np.isfinite(c)
        if ok.sum() < 2:
            continue
        out[i, 0] = float(np.nanmean(c))
        out[i, 1] = float(np.mean(c[ok] < 70.0))
        ratios = [
            (c[t + after] - c[t]) / carbs[i, t]
            for t in np.flatnonzero(carbs[i] >= _MIN_MEAL_G)
            if t + after < t_len and ok[t] and ok[t + after]
        ]
        if ratios:
            out[i, 2] = float(np.mean(ratios))
        recent = np.convolve(carbs[i] > 0, np.ones(fast), mode="full")[:t_len] > 0
        drifts = [
            (c[t + w] - c[t]) * 60.0 / (w * dt)
            for t in range(fast, t_len - w, w)
            if not recent[t + w] and ok[t] and ok[t + w]
        ]
        if drifts:
            out[i, 3] = float(np.mean(drifts))
        out[i, 4] = float(np.log(max(ins[i, ok].sum() / (ok.sum() * dt / 1440.0), 1e-3)))
    return out


# ---------------------------------------------------------------------------------------
# Leave-patients-out protocol
def records_from_simulation(result: SimulationResult) -> PatientRecords:
    """Device records (CGM, insulin delivered, carbs eaten) of a closed-loop run."""
    return PatientRecords(
        result.cgm_mg_dl, result.insulin_u, result.carbs_g, result.sample_time_min
    )


def quest_parameters(patients: VirtualPatients) -> TherapyParameters:
    """The virtual patients' own clinical (Quest) parameters: the oracle."""
    return TherapyParameters(
        basal_u_per_h=patients.basal_u_per_h.copy(),
        carb_ratio_g_per_u=patients.carb_ratio_g_per_u.copy(),
        correction_factor_mg_dl_per_u=patients.correction_factor_mg_dl_per_u.copy(),
    )


def _take(tp: TherapyParameters, idx: np.ndarray) -> TherapyParameters:
    return TherapyParameters(
        np.asarray(tp.basal_u_per_h)[idx],
        np.asarray(tp.carb_ratio_g_per_u)[idx],
        np.asarray(tp.correction_factor_mg_dl_per_u)[idx],
    )


def stratified_folds(age_groups: tuple[str, ...] | list[str], n_folds: int) -> np.ndarray:
    """Fold index per patient, dealing each age group round-robin (deterministic)."""
    groups = np.asarray(age_groups)
    counts = {g: int(np.sum(groups == g)) for g in np.unique(groups)}
    if n_folds < 2 or any(c < n_folds for c in counts.values()):
        raise MetamedValueError(
            f"n_folds must be >= 2 and at most the size of the smallest age group "
            f"({min(counts.values())}); received {n_folds}."
        )
    fold = np.empty(groups.shape[0], dtype=int)
    for g in counts:
        idx = np.flatnonzero(groups == g)
        fold[idx] = np.arange(idx.size) % n_folds
    return fold


@dataclass
class LeavePatientsOutResult:
    """Therapy parameters of every patient, each estimated without that patient's fold.

    Attributes
    ----------
    names, age_groups : tuple of str
    fold : numpy.ndarray of int
    parameters : dict of str to TherapyParameters
        ``"0d"`` (population average of the training patients' age group), ``"1d"``,
        ``"2d"``, ... (adapted from that many days of records), ``"1d_cautious"``, ...
        (the cautious choice from the same records) and ``"oracle"`` (Quest).
    record_metrics : dict of str to numpy.ndarray
        Glycaemic metrics of the record days (under the population therapy).
    personalisers : list of TherapyPersonaliser
        The meta-trained model of each fold.
    """

    names: tuple[str, ...]
    age_groups: tuple[str, ...]
    fold: np.ndarray
    parameters: dict[str, TherapyParameters]
    record_metrics: dict[str, np.ndarray]
    personalisers: list[TherapyPersonaliser]


def leave_patients_out(
    days_of_data: tuple[int, ...] = (0, 1, 2, 3),
    n_folds: int = 5,
    seed: int = 0,
    sample_time_min: int = 5,
    personaliser: TherapyPersonaliser | None = None,
    risk_aversion: float = 1.0,
) -> LeavePatientsOutResult:
    """Personalise every virtual patient from its own records, leave-patients-out.

    The 30 patients are dealt into ``n_folds`` folds stratified by age group.  For each
    fold, the population therapy (geometric mean of the *training* patients' Quest
    parameters in each age group) runs every patient for ``max(days_of_data)`` days of
    the randomised meal scenario with CGM noise (seed ``seed + fold``): these are the
    device records.  A :class:`TherapyPersonaliser` is meta-trained on the training
    patients' records and adapted to each held-out patient from its first ``d`` days,
    both as the estimate (key ``"{d}d"``) and, for ``d > 0``, as the cautious choice at
    ``risk_aversion`` (key ``"{d}d" + CAUTIOUS``, see :meth:`TherapyPersonaliser.adapt`).
    All records of a fold's batch come from one batched simulation.
    """
    proto = personaliser if personaliser is not None else TherapyPersonaliser()
    everyone = load_virtual_patients()
    n = len(everyone)
    groups = np.asarray(everyone.age_group)
    fold = stratified_folds(everyone.age_group, n_folds)
    oracle = quest_parameters(everyone)
    record_days = max(max(days_of_data), 1)
    # one batch: rows (fold f, patient j), each fold's population therapy
    rows = [(f, j) for f in range(n_folds) for j in range(n)]
    batch = everyone.select([everyone.names[j] for _, j in rows])
    pop_rows = np.empty((len(rows), 3))
    for f in range(n_folds):
        train = fold != f
        for g in np.unique(groups):
            sel = train & (groups == g)
            pop = np.exp(
                np.log(
                    np.stack(
                        [
                            oracle.basal_u_per_h[sel],
                            oracle.carb_ratio_g_per_u[sel],
                            oracle.correction_factor_mg_dl_per_u[sel],
                        ],
                        axis=1,
                    )
                ).mean(axis=0)
            )
            for r, (ff, j) in enumerate(rows):
                if ff == f and groups[j] == g:
                    pop_rows[r] = pop
    env = GlucoseVectorEnv(batch, days=record_days, sample_time_min=sample_time_min)
    ctrl = BasalBolusController(pop_rows[:, 0], pop_rows[:, 1], pop_rows[:, 2])
    sim = rollout(ctrl, env, seed=seed)
    records = records_from_simulation(sim)
    rec_metrics_all = sim.metrics()
    fold_of_row = np.array([f for f, _ in rows])
    patient_of_row = np.array([j for _, j in rows])

    keys = [f"{d}d" for d in days_of_data]
    est = {k: np.zeros((n, 3)) for k in keys}
    est.update({f"{d}d{CAUTIOUS}": np.zeros((n, 3)) for d in days_of_data if d > 0})
    record_metrics = {k: np.zeros(n) for k in rec_metrics_all}
    fitted: list[TherapyPersonaliser] = []
    for f in range(n_folds):
        train_rows = np.flatnonzero((fold_of_row == f) & (fold[patient_of_row] != f))
        test_rows = np.flatnonzero((fold_of_row == f) & (fold[patient_of_row] == f))
        train_pat = patient_of_row[train_rows]
        test_pat = patient_of_row[test_rows]
        # a fresh, unfitted copy of the prototype's hyperparameters for each fold
        model = type(proto)(
            **{f.name: getattr(proto, f.name) for f in fields(proto) if f.init}
        ).meta_fit(records.subset(train_rows), tuple(groups[train_pat]), _take(oracle, train_pat))
        fitted.append(model)
        test_records = records.subset(test_rows)
        for d, key in zip(days_of_data, keys, strict=True):
            own = test_records.first_days(d) if d > 0 else None
            variants = {key: 0.0, f"{key}{CAUTIOUS}": risk_aversion} if d > 0 else {key: 0.0}
            for variant, z in variants.items():
                tp = model.adapt(own, tuple(groups[test_pat]), risk_aversion=z)
                est[variant][test_pat] = np.stack(
                    [tp.basal_u_per_h, tp.carb_ratio_g_per_u, tp.correction_factor_mg_dl_per_u],
                    axis=1,
                )
        for k, v in rec_metrics_all.items():
            record_metrics[k][test_pat] = v[test_rows]
    parameters = {k: TherapyParameters(v[:, 0], v[:, 1], v[:, 2]) for k, v in est.items()}
    parameters["oracle"] = oracle
    return LeavePatientsOutResult(
        names=everyone.names,
        age_groups=everyone.age_group,
        fold=fold,
        parameters=parameters,
        record_metrics=record_metrics,
        personalisers=fitted,
    )
