"""Conformal sets and intervals: empirical coverage on held-out sites, saving, refusals.

Coverage is checked the way a site would meet it: adapt on a random support sample of a
held-out site, then count how often the set (or interval) holds the true outcome of that
site's other patients, over many support draws.  The tolerance is 4 standard deviations
of that average: a conformal set's coverage given its n calibration rows is close to
Beta(l, n + 1 - l) with variance about c (1 - c) / (n + 2), plus the binomial noise of a
finite query set, averaged over independent draws.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from metamed.data import make_synthetic_cohort
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedValueError
from metamed.learners import AdaptedModel, ConformalModel, conformal_adapt, make_learner
from metamed.tasks import TaskSet, make_tasks


def held_out_sites(outcome_type: str = "binary", n_per_task: int = 400, seed: int = 0):
    cohort = make_synthetic_cohort(
        n_tasks=6, n_per_task=n_per_task, n_features=6, outcome_type=outcome_type, seed=seed
    )
    taskset = TaskSet(cohort)
    train, test = taskset.names[:4], taskset.names[4:]
    prep = Preprocessor(cohort.schema).fit(taskset.frames(train))
    return make_tasks(taskset, train, prep), make_tasks(taskset, test, prep)


@pytest.fixture(scope="module")
def binary_sites():
    return held_out_sites("binary")


@pytest.fixture(scope="module")
def maml(binary_sites):
    train, _ = binary_sites
    return make_learner(
        "fomaml", hidden_sizes=(16,), meta_iterations=8, meta_batch_size=4, k_support=10, n_query=20
    ).meta_fit(train)


def random_support(task, n, rng):
    """A uniform random sample (redrawn until each class has 2 rows): exchangeable with the rest."""
    while True:
        idx = rng.permutation(len(task))
        support, query = idx[:n], idx[n:]
        if (
            task.outcome_type != "binary"
            or np.bincount(task.y[support].astype(int), minlength=2).min() >= 2
        ):
            return task.subset(support), task.subset(query)


def empirical_coverage(learner, tasks, n, coverage, method, draws, seed=0):
    """Mean coverage over draws and sites, its tolerance, and the mean set size / width."""
    rng = np.random.default_rng(seed)
    covered, sizes, query_rows = [], [], []
    for task in tasks:
        for _ in range(draws):
            support, query = random_support(task, n, rng)
            model = conformal_adapt(
                learner, support, coverage, method, random_state=int(rng.integers(1e6))
            )
            if task.outcome_type == "binary":
                sets = model.predict_set(query.X)
                hit = sets[np.arange(len(query)), query.y.astype(int)]
                sizes.append(sets.sum(axis=1).mean())
            else:
                lo, hi = model.predict_interval(query.X).T
                hit = (lo <= query.y) & (query.y <= hi)
                sizes.append(np.mean(hi - lo))
            covered.append(hit.mean())
            query_rows.append(len(query))
    c = coverage
    per_draw_var = c * (1 - c) / (model.n_calibration + 2) + c * (1 - c) / np.mean(query_rows)
    tolerance = 4 * math.sqrt(per_draw_var / len(covered))
    return float(np.mean(covered)), tolerance, float(np.mean(sizes)), model


@pytest.mark.parametrize(
    ("n", "method", "expected"),
    [(15, "auto", "jackknife+"), (40, "auto", "cv+"), (60, "split", "split")],
)
def test_binary_sets_reach_the_coverage_target_on_held_out_sites(
    binary_sites, maml, n, method, expected
):
    _, test = binary_sites
    mean, tol, size, model = empirical_coverage(maml, test, n, 0.9, method, draws=25)
    assert model.method == expected
    assert mean >= 0.9 - tol, (mean, tol)
    # Not trivially covered by always answering {0, 1}: the sets stay informative and the
    # coverage stays near the target (at most 1 / (n_cal + 1) above it, for split).
    assert mean <= 0.9 + 1 / (model.n_calibration + 1) + tol, (mean, tol)
    assert size < 1.95


def test_a_lower_target_gives_smaller_sets_and_lower_coverage(binary_sites, maml):
    _, test = binary_sites
    high = empirical_coverage(maml, test, 40, 0.9, "cv+", draws=10)
    low = empirical_coverage(maml, test, 40, 0.7, "cv+", draws=10)
    assert low[0] >= 0.7 - low[1]
    assert low[0] < high[0] and low[2] < high[2]


def test_numeric_intervals_reach_the_coverage_target_on_held_out_sites():
    train, test = held_out_sites("numeric", seed=1)
    learner = make_learner("local-logreg").meta_fit(train)  # ridge on the support set
    mean, tol, width, model = empirical_coverage(learner, test, 40, 0.9, "cv+", draws=20)
    assert mean >= 0.9 - tol and mean <= 0.9 + 1 / 41 + tol, (mean, tol)
    mean, tol, _, model = empirical_coverage(learner, test, 300, 0.9, "split", draws=10)
    assert model.method == "split"
    assert 0.9 - tol <= mean <= 0.9 + 1 / (model.n_calibration + 1) + tol, (mean, tol)


def test_save_and_load_give_the_same_sets(binary_sites, maml, tmp_path):
    _, test = binary_sites
    rng = np.random.default_rng(5)
    support, query = random_support(test[0], 30, rng)
    model = conformal_adapt(maml, support, 0.9)
    model.save(tmp_path / "m")
    loaded = AdaptedModel.load(tmp_path / "m")
    assert isinstance(loaded, ConformalModel) and len(loaded.fold_models) == 10
    np.testing.assert_array_equal(loaded.predict_set(query.X), model.predict_set(query.X))
    np.testing.assert_array_equal(loaded.predict_proba(query.X), model.predict_proba(query.X))


def test_gbm_fold_models_each_keep_their_own_text_file(binary_sites, tmp_path):
    train, test = binary_sites
    gbm = make_learner("local-gbm").meta_fit(train)
    support, query = random_support(test[0], 12, np.random.default_rng(0))
    model = conformal_adapt(gbm, support, 0.9)
    model.save(tmp_path / "g")
    loaded = AdaptedModel.load(tmp_path / "g")
    np.testing.assert_array_equal(loaded.predict_set(query.X), model.predict_set(query.X))
    assert len(list((tmp_path / "g").glob("fold*-lightgbm-model.txt"))) == 12


def test_served_risk_is_the_model_adapted_on_all_support_rows(binary_sites, maml):
    _, test = binary_sites
    support, query = random_support(test[1], 40, np.random.default_rng(1))
    model = conformal_adapt(maml, support, 0.9, "cv+")
    np.testing.assert_array_equal(
        model.predict_proba(query.X), maml.adapt(support).predict_proba(query.X)
    )


def test_refusals_name_the_problem(binary_sites, maml):
    _, test = binary_sites
    support, _ = random_support(test[0], 30, np.random.default_rng(2))
    with pytest.raises(MetamedValueError, match="at least 9 support patients"):
        conformal_adapt(maml, support.subset(np.arange(8)), 0.9)
    one_positive = np.r_[np.flatnonzero(support.y == 1)[:1], np.flatnonzero(support.y == 0)[:20]]
    with pytest.raises(MetamedValueError, match="1 with outcome 1; .*at least 2 patients of each"):
        conformal_adapt(maml, support.subset(one_positive), 0.9)
    with pytest.raises(MetamedValueError, match="Split conformal at 90% coverage needs at least 9"):
        conformal_adapt(maml, support.subset(np.arange(25)), 0.9, "split")
    with pytest.raises(MetamedValueError, match="strictly between 0 and 1"):
        conformal_adapt(maml, support, 90)
    with pytest.raises(MetamedValueError, match="Unknown conformal method 'cv'"):
        conformal_adapt(maml, support, 0.9, "cv")


@pytest.mark.parametrize("outcome_type", ["binary", "numeric"])
def test_one_batched_pass_over_the_fold_models_gives_their_own_sets(outcome_type, monkeypatch):
    train, test = held_out_sites(outcome_type, n_per_task=120, seed=3)
    learner = make_learner(
        "fomaml", hidden_sizes=(16, 8), meta_iterations=4, meta_batch_size=4, k_support=10
    ).meta_fit(train)
    support, query = random_support(test[0], 40, np.random.default_rng(4))
    model = conformal_adapt(learner, support, 0.9, "cv+")
    fold_class = type(model.fold_models[0])
    assert fold_class.joint(model.fold_models) is not None  # the batched pass is the one used
    parts = (model.model, model.fold_models, model.fold_of, model.scores, 0.9, "cv+")
    if outcome_type == "binary":
        risk, sets = model.predict_proba_and_set(query.X)
        np.testing.assert_array_equal(risk, model.predict_proba(query.X))
    else:
        mu, interval = model.predict_and_interval(query.X)
        np.testing.assert_array_equal(mu, model.predict(query.X))
    # The same model asking each fold model in turn, as before the batched pass existed.
    monkeypatch.setattr(fold_class, "joint", classmethod(lambda cls, models: None))
    one_by_one = type(model)(*parts)
    if outcome_type == "binary":
        np.testing.assert_array_equal(sets, one_by_one.predict_set(query.X))
    else:
        expected = one_by_one.predict_interval(query.X)
        np.testing.assert_allclose(interval, expected, rtol=1e-6, atol=1e-6 * np.ptp(expected))
    pickle.loads(pickle.dumps(model))  # what the batched pass prepared is not pickled
