"""Seeded synthetic multi-task cohorts: the built-in data of the demo and of fast tests.

Real cohorts need files; this generator needs nothing and runs in milliseconds, yet
has what meta-learning exploits: many tasks that share one risk model, each with its
own deviations.  Its parameters (covariate shift, prevalence shift, task heterogeneity,
missingness) can be turned up or down to study when adaptation pays off.  The true
parameters are stored in the cohort's provenance so that tests can compare estimates
with the truth.

As a registered dataset (``load_dataset("synthetic", **options)``) every argument of
:func:`make_synthetic_cohort` is an option, with the same default; the generator checks
the values.  Bump ``SPEC.version`` with any change that alters the cohort a given set of
options and seed produces (the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.registry import DatasetSpec, Option
from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.outcomes import BINARY, NUMERIC, OUTCOMES, Outcome, as_outcome

__all__ = ["SPEC", "SYNTHETIC_RISK_GROUPS", "make_synthetic_cohort"]

#: Levels of the categorical column and their shared additive effect on the logit
#: (or on the mean of a numeric outcome).
SYNTHETIC_RISK_GROUPS: dict[str, float] = {"low": -0.5, "medium": 0.0, "high": 0.75}

_TASK_KINDS = {"site": "site", "condition": "condition"}


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MetamedTypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise MetamedValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_nonneg(name: str, value: float) -> float:
    if not np.isfinite(value) or value < 0:
        raise MetamedValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _binary_labels(score: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 outcomes with P(y = 1) = sigmoid(score) (``noise_sd`` is not used)."""
    return (rng.random(len(score)) < 1.0 / (1.0 + np.exp(-score))).astype(np.int64)


def _numeric_labels(score: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """The score plus Gaussian noise of standard deviation ``noise_sd``."""
    return score + noise_sd * rng.normal(0.0, 1.0, len(score))


#: How each outcome type's labels are drawn from a patient's linear score.
_LABELS = {BINARY: _binary_labels, NUMERIC: _numeric_labels}


def make_synthetic_cohort(
    n_tasks: int = 8,
    n_per_task: int | Sequence[int] = 200,
    n_features: int = 8,
    covariate_shift: float = 0.5,
    prevalence_shift: float = 0.75,
    task_heterogeneity: float = 0.5,
    missing_rate: float = 0.05,
    base_prevalence: float = 0.3,
    task_kind: str = "site",
    outcome_type: Outcome | str = "binary",
    noise_sd: float = 1.0,
    seed: int = 0,
) -> Cohort:
    r"""Generate a multi-task cohort from a shared risk model with task deviations.

    How the data are generated (all draws from ``numpy.random.default_rng(seed)``):

    1. Shared model.  Weights :math:`w \sim N(0, (2/\sqrt{d})^2 I_d)` for the ``d =
       n_features`` numeric features (so the shared linear score has standard deviation
       about 2 on standardised inputs: the true model's AUROC within a task is about
       0.8-0.9, as for good clinical risk scores),
       and a fixed effect per level of the categorical column ``risk_group``
       (:data:`SYNTHETIC_RISK_GROUPS`).
    2. Task deviations.  For each task *t*:

       * weights :math:`w_t = w + \text{task\_heterogeneity}\cdot(2/\sqrt{d})\,\delta_t`,
         :math:`\delta_t \sim N(0, I_d)`: the same relative size as the shared weights
         when ``task_heterogeneity = 1``, identical tasks when 0;
       * intercept :math:`b_t = \operatorname{logit}(\text{base\_prevalence}) +
         \text{prevalence\_shift}\cdot\varepsilon_t`, :math:`\varepsilon_t \sim N(0,1)`
         (prevalence shift between tasks);
       * feature means :math:`\mu_t \sim N(0, \text{covariate\_shift}^2 I_d)`
         (covariate shift between tasks);
       * ``risk_group`` level probabilities from a Dirichlet(2, 2, 2) draw.

    3. Patients.  For each of the ``n_per_task`` patients of task *t*:
       :math:`x = \mu_t + z`, :math:`z \sim N(0, I_d)`; ``risk_group`` drawn with the
       task's probabilities; score :math:`s = b_t + x^\top w_t + e(\text{risk\_group})`.
       Binary outcome: :math:`y \sim \text{Bernoulli}(\sigma(s))`.  Numeric outcome:
       :math:`y = s + \text{noise\_sd}\cdot N(0,1)` (``base_prevalence`` then only sets
       the offset of the mean).
    4. Missingness.  Each numeric and categorical feature cell is then blanked
       independently with probability ``missing_rate`` (missing completely at random;
       the outcome was generated from the complete values).  Outcome and task columns
       are never missing.

    Parameters
    ----------
    n_tasks : int, default 8
        Number of tasks (sites or conditions).
    n_per_task : int or sequence of int, default 200
        Patients per task; a sequence gives each task its own size.
    n_features : int, default 8
        Numeric features ``x01``, ``x02``, ...
    covariate_shift : float, default 0.5
        Standard deviation of the per-task feature means (in feature SD units).
    prevalence_shift : float, default 0.75
        Standard deviation of the per-task intercept on the logit scale.
    task_heterogeneity : float, default 0.5
        Size of the task-specific weight deviations relative to the shared weights.
    missing_rate : float, default 0.05
        Probability that a feature cell is missing, in [0, 1).
    base_prevalence : float, default 0.3
        Outcome prevalence of a task with zero intercept shift and zero score (0 < p < 1).
    task_kind : {"site", "condition"}, default "site"
        Name of the group column and prefix of the task names (``site_00``, ...).
    outcome_type : Outcome or {"binary", "numeric"}, default "binary"
        Binary: each patient's outcome is drawn with probability sigmoid(score).
        Numeric: the score plus Gaussian noise.
    noise_sd : float, default 1.0
        Residual standard deviation of a numeric outcome.
    seed : int, default 0
        Seed of the only random generator used.

    Returns
    -------
    Cohort
        Named ``"synthetic"``; columns ``x01..``, ``risk_group``, the group column and
        ``outcome``.  ``provenance["parameters"]`` holds the arguments and
        ``provenance["truth"]`` the shared weights, task weights, intercepts and means.
    """
    n_tasks = _check_int("n_tasks", n_tasks, 1)
    n_features = _check_int("n_features", n_features, 1)
    if isinstance(n_per_task, (int, np.integer)):  # bool too: _check_int refuses it
        sizes = [_check_int("n_per_task", n_per_task, 2)] * n_tasks
    else:
        sizes = [_check_int("n_per_task[i]", n, 2) for n in n_per_task]
        if len(sizes) != n_tasks:
            raise MetamedValueError(
                f"n_per_task has {len(sizes)} sizes but n_tasks is {n_tasks}; give one size "
                "per task or a single integer."
            )
    covariate_shift = _check_nonneg("covariate_shift", covariate_shift)
    prevalence_shift = _check_nonneg("prevalence_shift", prevalence_shift)
    task_heterogeneity = _check_nonneg("task_heterogeneity", task_heterogeneity)
    noise_sd = _check_nonneg("noise_sd", noise_sd)
    if not 0.0 <= missing_rate < 1.0:
        raise MetamedValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}.")
    if not 0.0 < base_prevalence < 1.0:
        raise MetamedValueError(
            f"base_prevalence must be strictly between 0 and 1, got {base_prevalence!r}."
        )
    if task_kind not in _TASK_KINDS:
        raise MetamedValueError(
            f"task_kind must be one of {sorted(_TASK_KINDS)}, got {task_kind!r}."
        )
    outcome = as_outcome(outcome_type)
    if outcome not in _LABELS:
        raise MetamedValueError(
            f"make_synthetic_cohort draws {' or '.join(map(str, _LABELS))} outcomes, not "
            f"{outcome} ones."
        )

    rng = np.random.default_rng(seed)
    scale = 2.0 / np.sqrt(n_features)
    shared_w = rng.normal(0.0, scale, n_features)
    levels = list(SYNTHETIC_RISK_GROUPS)
    level_effect = np.array([SYNTHETIC_RISK_GROUPS[level] for level in levels])
    base_logit = float(np.log(base_prevalence / (1.0 - base_prevalence)))
    group_col = _TASK_KINDS[task_kind]
    features = [f"x{j + 1:02d}" for j in range(n_features)]

    parts = []
    truth: dict[str, dict[str, object]] = {}
    for t, n in enumerate(sizes):
        name = f"{task_kind}_{t:02d}"
        w_t = shared_w + task_heterogeneity * scale * rng.normal(0.0, 1.0, n_features)
        b_t = base_logit + prevalence_shift * rng.normal()
        mu_t = (
            rng.normal(0.0, covariate_shift, n_features)
            if covariate_shift
            else np.zeros(n_features)
        )
        level_p = rng.dirichlet([2.0, 2.0, 2.0])
        X = mu_t + rng.normal(0.0, 1.0, (n, n_features))
        level_idx = rng.choice(len(levels), size=n, p=level_p)
        score = b_t + X @ w_t + level_effect[level_idx]
        y = _LABELS[outcome](score, noise_sd, rng)
        part = pd.DataFrame(X, columns=features)
        part["risk_group"] = pd.Series(np.array(levels, dtype=object)[level_idx], dtype=object)
        part[group_col] = name
        part["outcome"] = y
        parts.append(part)
        truth[name] = {
            "weights": w_t.tolist(),
            "intercept": float(b_t),
            "feature_means": mu_t.tolist(),
            "risk_group_probabilities": dict(zip(levels, level_p.tolist(), strict=True)),
        }
    frame = pd.concat(parts, ignore_index=True)
    if missing_rate > 0:
        # Drawn after all outcomes, so the missingness mask does not change the data
        # generated for a given seed except for the blanked cells.
        mask = rng.random((len(frame), n_features + 1)) < missing_rate
        for j, col in enumerate([*features, "risk_group"]):
            frame.loc[mask[:, j], col] = np.nan if col != "risk_group" else None

    schema = Schema(
        outcome="outcome",
        numeric=tuple(features),
        categorical=("risk_group",),
        group=(group_col,),
        outcome_type=outcome,
    )
    parameters = {
        "n_tasks": n_tasks,
        "n_per_task": sizes,
        "n_features": n_features,
        "covariate_shift": covariate_shift,
        "prevalence_shift": prevalence_shift,
        "task_heterogeneity": task_heterogeneity,
        "missing_rate": float(missing_rate),
        "base_prevalence": float(base_prevalence),
        "task_kind": task_kind,
        "outcome_type": outcome.name,
        "noise_sd": noise_sd,
        "seed": seed,
    }
    return Cohort(
        name="synthetic",
        frame=frame,
        schema=schema,
        provenance={
            "source": "metamed.data.make_synthetic_cohort (simulated, not real patients)",
            "licence": "generated data; no restrictions",
            "citation": "metamed synthetic multi-task generator",
            "checksums": {},
            "parameters": parameters,
            "truth": {
                "shared_weights": shared_w.tolist(),
                "risk_group_effects": dict(SYNTHETIC_RISK_GROUPS),
                "tasks": truth,
            },
        },
    )


def _load(_folder: Path | None, **options: object) -> Cohort:
    return make_synthetic_cohort(**options)  # type: ignore[arg-type]


# Options with a closed set of values; the generator checks the others (ranges, types).
_CHOICES: dict[str, tuple[str, ...]] = {
    "task_kind": tuple(_TASK_KINDS),
    "outcome_type": tuple(OUTCOMES),
}

SPEC = DatasetSpec(
    name="synthetic",
    version=1,
    title="Synthetic multi-site cohort (simulated)",
    description=(
        "Seeded simulation: 8 sites x 200 patients sharing one logistic risk model with "
        "site-specific weights, intercepts (prevalence shift) and feature means (covariate "
        "shift); 8 numeric features with 5 % missing cells and one categorical column. "
        "Built in, no files."
    ),
    licence="generated data; no restrictions",
    citation="metamed synthetic multi-task generator",
    homepage="",
    # The defaults are the generator's own, read from its signature so they are stated once.
    options=tuple(
        Option(name, parameter.default, choices=_CHOICES.get(name))
        for name, parameter in inspect.signature(make_synthetic_cohort).parameters.items()
    ),
    loader=_load,
    n_patients=1600,
    n_tasks=8,
)
