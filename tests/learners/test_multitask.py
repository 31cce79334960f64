"""The multitask network: a head per training task, a new head per new task under the
prior those heads define."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from metamed.learners import make_learner
from metamed.outcomes import BINARY, NUMERIC
from metamed.tasks import Task


def family(n_tasks: int, spread: float, seed: int = 0, n: int = 200, outcome=BINARY):
    """Tasks whose true weights scatter by ``spread`` around shared ones."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=8)

    def one(name: str, rows: int) -> Task:
        w = shared + rng.normal(scale=spread, size=8)
        X = rng.normal(size=(rows, 8)).astype(np.float32)
        eta = X @ w
        if outcome is BINARY:
            y = (rng.random(rows) < 1 / (1 + np.exp(-eta))).astype(np.float32)
        else:
            y = (eta + rng.normal(size=rows)).astype(np.float32)
        return Task(name, X, y, outcome)

    return [one(f"t{i}", n) for i in range(n_tasks)], one("new", 600)


def test_a_new_head_follows_a_task_unlike_the_training_ones():
    """Tasks differ (spread 1): with 100 labelled rows the new head beats the pooled model,
    which cannot adapt, and beats itself with 5 rows (it learns from the support)."""
    train, new = family(10, spread=1.0)
    learner = make_learner("multitask", random_state=0).meta_fit(train)
    pooled = make_learner("pooled", random_state=0).meta_fit(train)
    rng = np.random.default_rng(1)
    scores: dict[tuple[str, int], float] = {}
    for k in (5, 100):
        idx = rng.permutation(len(new))
        support, query = new.subset(idx[:k]), new.subset(idx[k:])
        for name, fitted in (("multitask", learner), ("pooled", pooled)):
            risk = fitted.adapt(support).predict_proba(query.X)
            scores[name, k] = roc_auc_score(query.y, risk)
    assert scores["multitask", 100] > scores["pooled", 100] + 0.05
    assert scores["multitask", 100] > scores["multitask", 5]


def test_the_prior_is_as_wide_as_the_training_tasks_differ():
    """The same one-class support (3 positives) moves the new head's predictions far less
    when the training tasks are alike (spread 0) than when they differ (spread 2): the
    prior was learned from the heads; and the predictions stay finite."""
    shifts = {}
    for spread in (0.0, 2.0):
        train, new = family(10, spread=spread)
        learner = make_learner("multitask", random_state=0).meta_fit(train)
        average = learner.adapt(new.subset([0, 1])).predict_proba(new.X)
        positives = learner.adapt(new.subset(np.flatnonzero(new.y == 1)[:3])).predict_proba(new.X)
        assert np.all(np.isfinite(positives))
        shifts[spread] = float(np.abs(positives - average).mean())
    assert shifts[0.0] < shifts[2.0] / 2


def test_numeric_outcomes_come_back_in_their_units():
    train, new = family(6, spread=0.5, outcome=NUMERIC)
    learner = make_learner("multitask", random_state=0).meta_fit(train)
    predicted = learner.adapt(new.subset(np.arange(50))).predict(new.X[50:])
    rmse = float(np.sqrt(np.mean((predicted - new.y[50:]) ** 2)))
    assert rmse < float(np.std(new.y[50:]))  # better than the query's own mean


@pytest.mark.parametrize("bad", [{"val_fraction": 0.5}, {"prior_strength": 0.0}])
def test_bad_hyperparameters_are_refused(bad):
    train, _ = family(3, spread=1.0)
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_learner("multitask", **bad).meta_fit(train)
