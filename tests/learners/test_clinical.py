"""Clinical scores as baselines: the IWPC formulas by hand and on the IWPC cohort, scores
built from raw rows (never from features), missing scores filled from training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema, load_dataset
from metamed.errors import MetamedError
from metamed.evaluation.metrics import mae, within_share
from metamed.learners.clinical import (
    IWPC_CLINICAL,
    IWPC_PHARMACOGENETIC,
    ScoreBaseline,
    clinical_score,
    iwpc_dose,
    score_tasks,
)
from metamed.tasks import TaskSet


def patient(**changes: object) -> pd.DataFrame:
    row = dict(
        age_decades=6.0, height_cm=170.0, weight_kg=80.0, race="White", carbamazepine=0.0,
        phenytoin=np.nan, rifampin=0.0, amiodarone=1.0, vkorc1_1639="A/G", cyp2c9="*1/*3",
    )  # fmt: skip
    row.update(changes)
    return pd.DataFrame([row])


def test_iwpc_formulas_by_hand():
    root = 5.6044 - 0.2614 * 6 + 0.0087 * 170 + 0.0128 * 80 - 0.8677 - 0.9357 - 0.5503
    assert iwpc_dose(patient(), IWPC_PHARMACOGENETIC)[0] == pytest.approx(root**2)
    clinical = 4.0376 - 0.2546 * 6 + 0.0118 * 170 + 0.0134 * 80 - 0.6752 - 0.5695
    assert iwpc_dose(patient(race="Asian"), IWPC_CLINICAL)[0] == pytest.approx(clinical**2)
    unknown = 5.6044 - 0.2614 * 6 + 0.0087 * 170 + 0.0128 * 80 - 0.4854 - 0.2188 - 0.5503
    rare = patient(vkorc1_1639=np.nan, cyp2c9="*1/*11")  # a rare allele counts as unknown
    assert iwpc_dose(rare, IWPC_PHARMACOGENETIC)[0] == pytest.approx(unknown**2)
    assert np.isnan(iwpc_dose(patient(height_cm=np.nan), IWPC_CLINICAL)[0])


def test_iwpc_formulas_on_the_iwpc_cohort(need_dataset):
    """The published formulas on the patients they were derived from: pharmacogenetic
    better than clinical, both better than 35 mg/week (the paper's ordering)."""
    frame = load_dataset("iwpc-warfarin", need_dataset("iwpc-warfarin")).frame
    y = frame["therapeutic_dose_mg_week"].to_numpy()
    genetic, clinical = (iwpc_dose(frame, c) for c in (IWPC_PHARMACOGENETIC, IWPC_CLINICAL))
    both = np.isfinite(genetic) & np.isfinite(clinical)
    assert both.sum() > 4000
    errors = [mae(y[both], d[both]) for d in (genetic, clinical, np.full(len(y), 35.0))]
    assert 8.0 < errors[0] < errors[1] < errors[2]
    assert within_share(y[both], genetic[both]) > within_share(y[both], clinical[both]) > 0.35


def scored_cohort() -> Cohort:
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "site": np.repeat(["a", "b", "c"], n // 3),
            "SAPS-I": rng.integers(5, 30, n).astype(float),
        }
    )
    frame["died"] = (rng.random(n) < 1 / (1 + np.exp(-(frame["SAPS-I"] - 17) / 4))).astype(int)
    frame.loc[[0, 50], "SAPS-I"] = np.nan
    schema = Schema(outcome="died", numeric=("x",), group=("site",), reference=("SAPS-I",))
    return Cohort("toy", frame, schema, {"source": "test"})


def test_score_tasks_read_the_score_and_fill_unknown_from_training_rows():
    taskset = TaskSet(scored_cohort(), "site")
    score = clinical_score("saps-i")
    train = score_tasks(score, taskset, ["a", "b"], ["a", "b"])
    (test,) = score_tasks(score, taskset, ["a", "b"], ["c"])
    known = (
        taskset.frame("a")["SAPS-I"].dropna().tolist()
        + taskset.frame("b")["SAPS-I"].dropna().tolist()
    )
    assert train[0].X[0, 0] == pytest.approx(np.mean(known))  # row 0 had no score
    np.testing.assert_array_equal(test.X[:, 0], taskset.frame("c")["SAPS-I"].to_numpy(np.float32))
    learner = ScoreBaseline(score="saps-i").meta_fit(train)
    model = learner.adapt(test.subset(np.arange(5)))
    risk = model.predict_proba(test.X)
    assert np.all(np.diff(risk[np.argsort(test.X[:, 0])]) >= 0)  # monotone in the score
    assert learner.adapt(test.subset(np.arange(9))).predict_proba(test.X) == pytest.approx(risk)


def test_unknown_score_names_are_refused():
    with pytest.raises(MetamedError, match="Did you mean 'sofa'"):
        clinical_score("sofaa")
    with pytest.raises(MetamedError, match="score must be one of"):
        ScoreBaseline(score="apache").meta_fit([])


def test_a_clinical_score_runs_in_the_protocol_on_the_same_episodes():
    from metamed.evaluation.protocol import ProtocolConfig, run_protocol
    from metamed.learners import make_method

    taskset = TaskSet(scored_cohort(), "site")
    splits = list(taskset.leave_one_out())[:1]
    methods = {"saps-i": make_method("saps-i"), "pooled-logreg": make_method("pooled-logreg")}
    result = run_protocol(taskset, methods, splits, ProtocolConfig(shots=(5,), draws=2), "toy")
    rows = result.predictions.groupby("method")["row"].apply(list)
    assert rows["saps-i"] == rows["pooled-logreg"]
    auroc = result.results.query("metric == 'auroc'").groupby("method")["value"].mean()
    assert auroc["saps-i"] > 0.6  # the toy outcome follows the score


def test_a_score_the_cohort_cannot_use_is_refused_before_any_work():
    from metamed.evaluation.protocol import ProtocolConfig, plan
    from metamed.learners import make_method

    taskset = TaskSet(scored_cohort(), "site")
    with pytest.raises(MetamedError, match="needs a binary outcome and the column.*apache"):
        plan(
            taskset,
            {"a": make_method("apache-iva")},
            list(taskset.leave_one_out()),
            ProtocolConfig(shots=(5,)),
            "toy",
        )


def test_a_benchmark_spec_names_clinical_scores_as_baselines():
    from metamed.evaluation.spec import BenchmarkSpec, DataSpec

    spec = BenchmarkSpec(
        data=DataSpec(dataset="iwpc-warfarin"),
        methods=("iwpc-pharmacogenetic", "fixed-dose", "recal-intercept", "maml"),
    )
    learners = spec.learners()
    assert isinstance(learners["fixed-dose"], ScoreBaseline)
    assert learners["fixed-dose"].score == "fixed-dose"
    assert spec.baselines == ["iwpc-pharmacogenetic", "fixed-dose", "recal-intercept"]
    with pytest.raises(MetamedError, match="Did you mean 'fixed-dose'"):
        BenchmarkSpec(data=DataSpec(dataset="iwpc-warfarin"), methods=("fixed-dos",))
