"""Recalibration after adaptation: out-of-fold on the support set, and it helps where the
adapted model is miscalibrated."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from metamed.evaluation.metrics import ece
from metamed.learners import make_learner
from metamed.learners.recalibration import recalibrate, support_folds
from metamed.tasks import Task

RNG = np.random.default_rng(0)


def site(n: int, intercept: float, seed: int) -> Task:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (rng.random(n) < expit(intercept + X @ np.array([1.0, -1.0, 0.5]))).astype(float)
    return Task(f"site{seed}", X, y)


TRAIN = [site(200, -2.0, s) for s in range(3)]
NEW = site(600, 0.5, 99)  # a site whose baseline risk the training sites do not share


def test_recalibration_on_the_support_fixes_a_shifted_baseline_risk():
    learner = make_learner("pooled-logreg").meta_fit(TRAIN)
    support, query = NEW.subset(np.arange(40)), NEW.subset(np.arange(40, 600))
    model = learner.adapt(support)
    fixed = recalibrate(learner, support, model, np.random.default_rng(0))
    before, after = model.predict_proba(query.X), fixed.predict_proba(query.X)
    assert abs(after.mean() - query.y.mean()) < abs(before.mean() - query.y.mean()) / 2
    assert ece(query.y, after) < ece(query.y, before)


def test_folds_partition_the_support_and_each_fold_is_predicted_by_the_others():
    folds = support_folds(7, 5, np.random.default_rng(0))
    assert sorted(np.concatenate(folds).tolist()) == list(range(7)) and len(folds) == 5
    assert len(support_folds(3, 5, np.random.default_rng(0))) == 3  # leave one out

    seen: list[np.ndarray] = []
    learner = make_learner("recal-intercept").meta_fit(TRAIN)
    real_adapt = learner.adapt

    def spy(support):
        seen.append(support.X.copy())
        return real_adapt(support)

    support = NEW.subset(np.arange(10))
    model = real_adapt(support)
    learner.adapt = spy  # type: ignore[method-assign]
    recalibrate(learner, support, model, np.random.default_rng(1))
    assert len(seen) == 5 and all(len(x) == 8 for x in seen)
    held = [{r.tobytes() for r in support.X} - {r.tobytes() for r in x} for x in seen]
    assert set().union(*held) == {r.tobytes() for r in support.X}  # every row held out once


def test_one_row_or_one_class_supports_stay_finite():
    learner = make_learner("pooled-logreg").meta_fit(TRAIN)
    one = NEW.subset(np.arange(1))
    assert recalibrate(learner, one, learner.adapt(one), RNG).slope == 1.0
    negatives = NEW.subset(np.flatnonzero(NEW.y == 0)[:6])
    fixed = recalibrate(learner, negatives, learner.adapt(negatives), RNG)
    assert np.isfinite(fixed.predict_proba(NEW.X)).all()


def test_the_protocol_scores_each_method_before_and_after_on_the_same_episodes():
    import pandas as pd

    from metamed.data import Cohort, Schema
    from metamed.evaluation.protocol import ProtocolConfig, run_protocol
    from metamed.tasks import TaskSet

    frame = pd.concat(
        [
            pd.DataFrame(t.X, columns=["a", "b", "c"]).assign(site=t.name, died=t.y.astype(int))
            for t in TRAIN
        ]
    )
    schema = Schema(outcome="died", numeric=("a", "b", "c"), group=("site",))
    taskset = TaskSet(
        Cohort("toy", frame.reset_index(drop=True), schema, {"source": "test"}), "site"
    )
    config = ProtocolConfig(shots=(10,), draws=2, recalibrate=True)
    result = run_protocol(
        taskset,
        {"m": make_learner("pooled-logreg")},
        list(taskset.leave_one_out())[:1],
        config,
        "toy",
    )
    rows = result.predictions.groupby("method")["row"].apply(list)
    assert set(rows.index) == {"m", "m+recal"} and rows["m"] == rows["m+recal"]
    assert result.config["recalibrate"] is True


def test_a_recalibrated_conformal_model_saves_loads_and_calibrates_better(tmp_path):
    """The adapter deploy uses (``metamed adapt --recalibrate``): conformal sets around
    recalibrated risks; the saved model predicts the same after loading, and its risks
    sit nearer the new site's event rate than the plain adaptation's."""
    from metamed.learners import AdaptedModel, conformal_adapt
    from metamed.learners.recalibration import RecalibratingAdapter

    learner = make_learner("pooled-logreg").meta_fit(TRAIN)
    support, query = NEW.subset(np.arange(60)), NEW.subset(np.arange(60, 600))
    plain = conformal_adapt(learner, support, 0.9, "cv+")
    recal = conformal_adapt(RecalibratingAdapter(learner), support, 0.9, "cv+")
    gap = {m: abs(m.predict_proba(query.X).mean() - query.y.mean()) for m in (plain, recal)}
    assert gap[recal] < gap[plain] / 2
    loaded = AdaptedModel.load(recal.save(tmp_path / "recal"))
    np.testing.assert_array_equal(loaded.predict_proba(query.X), recal.predict_proba(query.X))
    np.testing.assert_array_equal(loaded.predict_set(query.X), recal.predict_set(query.X))
    covered = loaded.predict_set(query.X)[np.arange(len(query)), query.y.astype(int)]
    assert covered.mean() >= 0.85  # the 90% sets hold the outcome (finite-sample slack)


def test_recalibrating_a_numeric_model_is_refused_with_the_reason():
    import pytest

    from metamed.errors import MetamedValueError
    from metamed.learners.recalibration import RecalibratingAdapter

    rng = np.random.default_rng(1)
    tasks = [Task(f"t{i}", rng.normal(size=(30, 3)), rng.normal(size=30), "numeric")
             for i in range(3)]  # fmt: skip
    learner = make_learner("pooled-logreg").meta_fit(tasks[:2])
    with pytest.raises(MetamedValueError, match="binary outcome; this model predicts a numeric"):
        RecalibratingAdapter(learner).adapt(tasks[2])


def test_recalibration_never_reverses_the_ranking_of_patients():
    """Supports whose out-of-fold predictions run against the labels (here: a site whose
    outcome is the training sites' reversed) would give a negative slope; recalibration
    then fits the intercept only, so the adapted model's AUROC is kept, never flipped."""
    from sklearn.metrics import roc_auc_score

    learner = make_learner("pooled-logreg").meta_fit(TRAIN)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 3))
    y = (rng.random(400) < expit(-(X @ np.array([1.0, -1.0, 0.5])))).astype(float)
    reversed_site = Task("reversed", X, y)
    support, query = reversed_site.subset(np.arange(40)), reversed_site.subset(np.arange(40, 400))
    model = learner.adapt(support)
    fixed = recalibrate(learner, support, model, np.random.default_rng(0))
    assert fixed.slope == 1.0
    before = roc_auc_score(query.y, model.predict_proba(query.X))
    assert roc_auc_score(query.y, fixed.predict_proba(query.X)) == before
