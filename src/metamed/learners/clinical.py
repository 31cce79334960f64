"""Clinical scores and dosing formulas as baselines: what a clinician would use with no model.

Each score is computed from a patient's *raw* cohort row, from its reference columns
(APACHE IVa's predicted mortality, SAPS-I, SOFA, a trial's risk score) or from ordinary
patient characteristics (the IWPC dosing formulas), never from preprocessed features,
and it is never a model input of any other learner.  A score is a learner on one input,
the score itself: the protocol builds its tasks with :func:`score_tasks` (the score of
every row as the only column) instead of the fitted preprocessing, and the learner then
follows the contract (``meta_fit``, ``adapt``, ``predict``).  None adapts: a clinical
score is used at the new site as it is, which is the point of the comparison.

- ``apache-iva`` (eICU): APACHE IVa's predicted hospital mortality, a probability, used
  as is (the model scores ``logit p`` with coefficient 1).
- ``saps-i``, ``sofa`` (PhysioNet 2012), ``trial-risk`` (indo-rct): points, not
  probabilities; turned into a risk by a logistic regression of the outcome on the score
  over the training sites' rows (how a score is calibrated before use), then used as is.
- ``iwpc-clinical``, ``iwpc-pharmacogenetic`` (IWPC warfarin): the IWPC's published
  dosing formulas (N Engl J Med 2009;360:753-64, supplementary appendix), which predict
  the square root of the weekly dose; ``fixed-dose``: 35 mg/week for everyone, the
  fixed-dose strategy the IWPC compared against.

A patient whose score cannot be computed (APACHE did not score 315 eICU stays; a missing
height in IWPC) gets the mean score of the training sites' rows, so that every method is
scored on the same patients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.linear_model import LogisticRegression

from metamed.data.cohort import Cohort
from metamed.errors import MetamedValueError, unknown_name
from metamed.learners._params import SEED, Options, hyperparameter, hyperparameters
from metamed.learners.base import MetaLearner
from metamed.learners.baselines import pooled_rows
from metamed.learners.updating import LinearModel, linear_model
from metamed.outcomes import BINARY, NUMERIC, Outcome, TargetScaling
from metamed.tasks.task import Task
from metamed.tasks.taskset import TaskSet

__all__ = [
    "CLINICAL_SCORES",
    "ClinicalScore",
    "ScoreBaseline",
    "clinical_score",
    "iwpc_dose",
    "check_score_applies",
    "score_tasks",
    "scores_for",
]

#: Probabilities are clipped this far from 0 and 1 before their logit is taken.
_EPS = 1e-6

#: IWPC pharmacogenetic dosing formula: sqrt(weekly dose, mg) = 5.6044 + Σ coefficient ·
#: term (IWPC, N Engl J Med 2009;360:753-64, supplementary appendix).
IWPC_PHARMACOGENETIC: Mapping[str, float] = MappingProxyType(
    {
        "intercept": 5.6044,
        "age_decades": -0.2614,
        "height_cm": 0.0087,
        "weight_kg": 0.0128,
        "vkorc1_ag": -0.8677,
        "vkorc1_aa": -1.6974,
        "vkorc1_unknown": -0.4854,
        "cyp2c9_12": -0.5211,
        "cyp2c9_13": -0.9357,
        "cyp2c9_22": -1.0616,
        "cyp2c9_23": -1.9206,
        "cyp2c9_33": -2.3312,
        "cyp2c9_unknown": -0.2188,
        "asian": -0.1092,
        "black": -0.2760,
        "missing_or_mixed_race": -0.1032,
        "enzyme_inducer": 1.1816,
        "amiodarone": -0.5503,
    }
)
#: IWPC clinical dosing formula (same source): no genotypes.
IWPC_CLINICAL: Mapping[str, float] = MappingProxyType(
    {
        "intercept": 4.0376,
        "age_decades": -0.2546,
        "height_cm": 0.0118,
        "weight_kg": 0.0134,
        "asian": -0.6752,
        "black": 0.4060,
        "missing_or_mixed_race": 0.0443,
        "enzyme_inducer": 1.2799,
        "amiodarone": -0.5695,
    }
)
#: The fixed-dose strategy of the IWPC comparison: 5 mg/day.
FIXED_DOSE_MG_WEEK = 35.0

_CYP2C9_TERMS = {
    "*1/*2": "cyp2c9_12",
    "*1/*3": "cyp2c9_13",
    "*2/*2": "cyp2c9_22",
    "*2/*3": "cyp2c9_23",
    "*3/*3": "cyp2c9_33",
}
_VKORC1_TERMS = {"A/G": "vkorc1_ag", "A/A": "vkorc1_aa"}


def _is(values: pd.Series, value: str) -> pd.Series:
    """1.0 where ``values`` equals ``value``, 0.0 elsewhere (missing included)."""
    return (values == value).fillna(False).astype(float)


def _iwpc_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """The formulas' terms per row, as the IWPC defined them (0/1 indicators and values)."""
    terms = pd.DataFrame(index=frame.index)
    for column in ("age_decades", "height_cm", "weight_kg"):
        terms[column] = frame[column].astype(float)
    race = frame["race"].astype("string")
    terms["asian"] = _is(race, "Asian")
    terms["black"] = _is(race, "Black or African American")
    terms["missing_or_mixed_race"] = (race.isna() | (_is(race, "Unknown") == 1)).astype(float)
    inducers = frame[["carbamazepine", "phenytoin", "rifampin"]].astype(float)
    terms["enzyme_inducer"] = (inducers == 1).any(axis=1).astype(float)
    terms["amiodarone"] = (frame["amiodarone"].astype(float) == 1).astype(float)
    vkorc1 = frame["vkorc1_1639"].astype("string")
    for value, term in _VKORC1_TERMS.items():
        terms[term] = _is(vkorc1, value)
    terms["vkorc1_unknown"] = vkorc1.isna().astype(float)
    cyp2c9 = frame["cyp2c9"].astype("string")
    for value, term in _CYP2C9_TERMS.items():
        terms[term] = _is(cyp2c9, value)
    # the formula knows *1, *2 and *3 only: rarer alleles (*5, *6, *11, *13, *14; 17 IWPC
    # patients) count as unknown, like a missing genotype
    known = cyp2c9.isin(["*1/*1", *_CYP2C9_TERMS]).fillna(False).astype(bool)
    terms["cyp2c9_unknown"] = (~known).astype(float)
    return terms


def iwpc_dose(frame: pd.DataFrame, coefficients: Mapping[str, float]) -> np.ndarray:
    """Weekly warfarin dose (mg) by an IWPC formula: the square of its linear predictor.

    Rows missing age, height or weight give NaN (the formulas need all three).
    """
    terms = _iwpc_terms(frame)
    root = coefficients["intercept"] + sum(
        c * terms[name] for name, c in coefficients.items() if name != "intercept"
    )
    return np.asarray(root, dtype=np.float64) ** 2


@dataclass(frozen=True)
class ClinicalScore:
    """One clinical score: where it applies, what it reads and how it is computed.

    Attributes
    ----------
    name : str
        Method name (``apache-iva``).
    outcome : Outcome
        The outcome type it predicts.
    columns : tuple of str
        The cohort columns it reads; a cohort without them cannot use it.
    compute : callable
        ``compute(frame) -> ndarray``: the score of every row (NaN where unknown).
    scale : {"probability", "points", "value"}
        A probability is used as is, points are calibrated on the training rows, a value
        (a dose) is the prediction itself.
    source : str
        Where the score comes from, for reports.
    """

    name: str
    outcome: Outcome
    columns: tuple[str, ...]
    compute: Callable[[pd.DataFrame], np.ndarray]
    scale: str
    source: str

    def applies_to(self, columns: Sequence[str], outcome: Outcome) -> bool:
        """Whether a cohort with these columns and outcome can use this score."""
        return outcome == self.outcome and set(self.columns) <= set(columns)


def _column(name: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def read(frame: pd.DataFrame) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64)

    return read


_IWPC_COLUMNS = (
    "age_decades", "height_cm", "weight_kg", "race", "carbamazepine", "phenytoin",
    "rifampin", "amiodarone", "vkorc1_1639", "cyp2c9",
)  # fmt: skip

#: Every clinical score by method name.
CLINICAL_SCORES: Mapping[str, ClinicalScore] = MappingProxyType(
    {
        s.name: s
        for s in (
            ClinicalScore(
                "apache-iva", BINARY, ("apache_iva_pred_hospital_mortality",),
                _column("apache_iva_pred_hospital_mortality"), "probability",
                "APACHE IVa predicted hospital mortality (eICU apachepatientresult)",
            ),
            ClinicalScore(
                "saps-i", BINARY, ("SAPS-I",), _column("SAPS-I"), "points",
                "SAPS-I score (PhysioNet 2012 outcomes file)",
            ),
            ClinicalScore(
                "sofa", BINARY, ("SOFA",), _column("SOFA"), "points",
                "SOFA score (PhysioNet 2012 outcomes file)",
            ),
            ClinicalScore(
                "trial-risk", BINARY, ("risk",), _column("risk"), "points",
                "the indomethacin trial's enrolment risk score",
            ),
            ClinicalScore(
                "iwpc-clinical", NUMERIC, _IWPC_COLUMNS,
                lambda f: iwpc_dose(f, IWPC_CLINICAL), "value",
                "IWPC clinical dosing formula (N Engl J Med 2009;360:753-64)",
            ),
            ClinicalScore(
                "iwpc-pharmacogenetic", NUMERIC, _IWPC_COLUMNS,
                lambda f: iwpc_dose(f, IWPC_PHARMACOGENETIC), "value",
                "IWPC pharmacogenetic dosing formula (N Engl J Med 2009;360:753-64)",
            ),
            ClinicalScore(
                "fixed-dose", NUMERIC, ("therapeutic_dose_mg_week",),
                lambda f: np.full(len(f), FIXED_DOSE_MG_WEEK), "value",
                "35 mg/week for every patient (the IWPC's fixed-dose comparison)",
            ),
        )
    }
)  # fmt: skip


def clinical_score(name: str) -> ClinicalScore:
    """The clinical score called ``name``, with "did you mean" for a typo."""
    if name not in CLINICAL_SCORES:
        raise unknown_name("clinical score", name, CLINICAL_SCORES)
    return CLINICAL_SCORES[name]


def scores_for(cohort: Cohort) -> list[str]:
    """Names of the clinical scores that ``cohort`` can use (its columns and outcome)."""
    columns, outcome = list(cohort.frame.columns), cohort.schema.outcome_type
    return [n for n, s in CLINICAL_SCORES.items() if s.applies_to(columns, outcome)]


def check_score_applies(score: ClinicalScore, cohort: Cohort) -> None:
    """One clear error, before any work, when ``cohort`` cannot use ``score``."""
    if score.applies_to(list(cohort.frame.columns), cohort.schema.outcome_type):
        return
    able = scores_for(cohort)
    raise MetamedValueError(
        f"Clinical score '{score.name}' needs a {score.outcome} outcome and the column(s) "
        f"{', '.join(score.columns)}; cohort '{cohort.name}' has a "
        f"{cohort.schema.outcome_type} outcome"
        f"{'' if set(score.columns) <= set(cohort.frame.columns) else ' and lacks them'}. "
        f"Scores it can use: {', '.join(able) or 'none'}."
    )


def _score_column(score: ClinicalScore, frame: pd.DataFrame) -> np.ndarray:
    values = np.asarray(score.compute(frame), dtype=np.float64)
    if score.scale == "probability":
        values = logit(np.clip(values, _EPS, 1 - _EPS))  # NaN stays NaN
    return values


def score_tasks(
    score: ClinicalScore, taskset: TaskSet, train: Sequence[str], names: Sequence[str]
) -> list[Task]:
    """Tasks ``names`` whose one input column is the score (a probability as its logit).

    A row whose score is unknown gets the mean score of the rows of the ``train`` tasks,
    so that the score is judged on every patient the other methods are judged on.
    """
    outcome = taskset.cohort.schema.outcome
    outcome_type = taskset.cohort.schema.outcome_type
    train_scores = np.concatenate([_score_column(score, taskset.frame(n)) for n in train])
    known = train_scores[np.isfinite(train_scores)]
    if not len(known):
        raise MetamedValueError(
            f"Clinical score '{score.name}' is unknown for every training row; it needs "
            f"{', '.join(score.columns)}."
        )
    fill = float(known.mean())
    tasks = []
    for name in names:
        frame = taskset.frame(name)
        values = _score_column(score, frame)
        values = np.where(np.isfinite(values), values, fill)
        y = frame[outcome].to_numpy(dtype=np.float32)
        tasks.append(Task(name, values[:, None], y, outcome_type))
    return tasks


@hyperparameters
class ScoreBaseline(MetaLearner):
    """A clinical score as a learner on its one input column (see the module docstring).

    Parameters
    ----------
    score : str
        Name of the clinical score (:data:`CLINICAL_SCORES`).
    random_state : int, default 0
        Kept for a uniform contract; nothing here is random.
    """

    outcome_types = (BINARY, NUMERIC)
    uses_meta_training = True

    score: str = hyperparameter(default="apache-iva", allowed=Options(tuple(CLINICAL_SCORES)))
    random_state: int = hyperparameter(default=0, allowed=SEED)

    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> ScoreBaseline:
        """Calibrate a points score on the training rows; a probability or value is kept."""
        rows = pooled_rows(self, train_tasks, val_tasks)
        score = clinical_score(self.score)
        if rows.n_features != 1:
            raise MetamedValueError(
                f"ScoreBaseline '{self.score}' takes tasks with the score as the one input "
                f"column (build them with score_tasks), got {rows.n_features} columns."
            )
        coef, intercept = np.ones(1), 0.0
        if score.scale == "points":
            fit = LogisticRegression(C=1e6, max_iter=1000).fit(rows.X, rows.y.astype(int))
            coef, intercept = fit.coef_[0].astype(np.float64), float(fit.intercept_[0])
        self.coef_, self.intercept_ = coef, intercept
        self.n_features_ = 1
        self.outcome_type_ = rows.outcome
        return self

    def adapt(self, support: Task) -> LinearModel:
        """The score as it is: a clinical score does not adapt."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        return linear_model(self.outcome_type_, self.coef_, self.intercept_, TargetScaling())
