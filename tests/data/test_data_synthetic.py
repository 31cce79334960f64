"""Synthetic multi-task generator: determinism, controls, shared structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from metamed.data.datasets.synthetic import make_synthetic_cohort
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.outcomes import NUMERIC
from metamed.tasks import TaskSet, make_tasks


def test_seeded_and_shaped() -> None:
    a = make_synthetic_cohort(n_tasks=5, n_per_task=40, n_features=3, seed=3)
    b = make_synthetic_cohort(n_tasks=5, n_per_task=40, n_features=3, seed=3)
    c = make_synthetic_cohort(n_tasks=5, n_per_task=40, n_features=3, seed=4)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert not a.frame.equals(c.frame)
    assert a.frame.shape == (200, 3 + 3)
    assert a.schema.numeric == ("x01", "x02", "x03")
    assert a.schema.categorical == ("risk_group",)
    assert a.schema.group == ("site",)
    assert sorted(a.frame["site"].unique()) == [f"site_{i:02d}" for i in range(5)]
    assert set(a.frame["outcome"].unique()) <= {0, 1}
    assert a.provenance["parameters"]["seed"] == 3


def test_variable_sizes_condition_tasks_and_numeric_outcome() -> None:
    cohort = make_synthetic_cohort(
        n_tasks=3, n_per_task=[10, 20, 30], task_kind="condition", outcome_type="numeric"
    )
    assert cohort.schema.group == ("condition",)
    assert cohort.frame["condition"].value_counts().sort_index().tolist() == [10, 20, 30]
    assert cohort.schema.outcome_type is NUMERIC
    assert cohort.frame["outcome"].nunique() == 60


def test_missingness_rate() -> None:
    cohort = make_synthetic_cohort(n_tasks=4, n_per_task=500, missing_rate=0.2, seed=1)
    rate = cohort.frame[[*cohort.schema.numeric, "risk_group"]].isna().to_numpy().mean()
    assert abs(rate - 0.2) < 0.01
    assert not cohort.frame[["site", "outcome"]].isna().any().any()
    none = make_synthetic_cohort(n_tasks=2, n_per_task=50, missing_rate=0.0)
    assert not none.frame.isna().any().any()


def test_shift_controls() -> None:
    def spread(**kw: float) -> tuple[float, float]:
        cohort = make_synthetic_cohort(n_tasks=12, n_per_task=400, missing_rate=0.0, seed=2, **kw)
        by_task = cohort.frame.groupby("site")
        return float(by_task["outcome"].mean().std()), float(by_task["x01"].mean().std())

    prev_off, cov_off = spread(prevalence_shift=0.0, covariate_shift=0.0, task_heterogeneity=0.0)
    prev_on, cov_on = spread(prevalence_shift=1.5, covariate_shift=1.0, task_heterogeneity=0.0)
    assert prev_on > 2 * prev_off
    assert cov_on > 4 * cov_off


def _pooled_and_oracle_auroc(task_heterogeneity: float) -> tuple[float, float, list[float]]:
    """AUROC on held-out site_00 of a logistic model pooled on the 7 other sites, and of
    the true score of site_00 (from the generator's stored truth)."""
    cohort = make_synthetic_cohort(
        n_tasks=8, n_per_task=300, seed=0, task_heterogeneity=task_heterogeneity
    )
    taskset = TaskSet(cohort)
    split = taskset.split(["site_00"])
    pre = Preprocessor(cohort.schema).fit(taskset.frames(split.train))
    train = make_tasks(taskset, split.train, pre)
    (test,) = make_tasks(taskset, split.test, pre)
    model = LogisticRegression(max_iter=1000).fit(
        np.concatenate([t.X for t in train]), np.concatenate([t.y for t in train])
    )
    pooled = roc_auc_score(test.y, model.predict_proba(test.X)[:, 1])
    truth = cohort.provenance["truth"]
    frame = taskset.frame("site_00")
    # Missing cells scored at 0 (the feature mean before shift): close to the truth.
    score = (
        frame[list(cohort.schema.numeric)].fillna(0.0).to_numpy()
        @ np.array(truth["tasks"]["site_00"]["weights"])
        + frame["risk_group"].map(truth["risk_group_effects"]).fillna(0.0).to_numpy()
    )
    oracle = roc_auc_score(frame["outcome"], score)
    return pooled, oracle, [t.prevalence for t in train]


def test_tasks_share_structure_and_differ() -> None:
    """Shared risk model: a model pooled on other tasks ranks a new task well.  Task
    deviations: the task's own true model ranks better still (room for adaptation), and
    the gap vanishes when task_heterogeneity is 0."""
    pooled, oracle, prevalences = _pooled_and_oracle_auroc(0.5)
    assert pooled > 0.7
    assert oracle - pooled > 0.05
    assert max(prevalences) - min(prevalences) > 0.15
    pooled_same, oracle_same, _ = _pooled_and_oracle_auroc(0.0)
    assert abs(oracle_same - pooled_same) < 0.03


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_tasks": 0}, MetamedValueError, "n_tasks"),
        ({"n_tasks": 2.5}, MetamedTypeError, "n_tasks"),
        ({"n_per_task": [10]}, MetamedValueError, "one size per task"),
        ({"missing_rate": 1.0}, MetamedValueError, "missing_rate"),
        ({"covariate_shift": -1}, MetamedValueError, "covariate_shift"),
        ({"task_kind": "hospital"}, MetamedValueError, "task_kind"),
        ({"outcome_type": "survival"}, MetamedValueError, "outcome_type"),
        ({"base_prevalence": 1.0}, MetamedValueError, "base_prevalence"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make_synthetic_cohort(**kwargs)
