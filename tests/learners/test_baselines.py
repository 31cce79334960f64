"""Baseline learners: behaviour beyond the generic contract (see test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.learners.base import make_learner
from metamed.learners.baselines import (
    LocalGBM,
    LocalLogisticRegression,
    PooledFineTune,
    PooledMLP,
)
from metamed.outcomes import NUMERIC
from metamed.tasks import Task

FAST = dict(hidden_sizes=(16,), max_epochs=5, batch_size=64)


@pytest.fixture(scope="module")
def tasks(make_toy_tasks) -> list[Task]:
    return make_toy_tasks()


@pytest.fixture(scope="module")
def numeric_tasks(make_toy_tasks) -> list[Task]:
    return make_toy_tasks(seed=1, n_rows=80, outcome_type="numeric")


# -- better than chance ----------------------------------------------------------------------
# K per method: the local GBM needs more rows than the others before it finds splits
# (measured with its defaults over 3 seeds: mean AUROC 0.63 at K = 10, 0.70 at K = 30).
@pytest.mark.parametrize(
    ("name", "k"),
    [
        ("pooled", 10),
        ("pooled-finetune", 10),
        ("local-logreg", 10),
        ("local-gbm", 30),
        ("local-rf", 30),
    ],
)
def test_each_baseline_beats_chance_on_synthetic_tasks(
    name: str, k: int, make_toy_tasks, split_support_query
) -> None:
    tasks = make_toy_tasks(seed=0, n_rows=100)
    aucs = []
    for held_out in (3, 4, 5):
        rest = [t for i, t in enumerate(tasks) if i != held_out]
        # Default hyperparameters apart from a shorter epoch budget (early stopping on the
        # validation task ends pooled training before epoch 40 on these splits anyway).
        params = {"max_epochs": 40} if name.startswith("pooled") else {}
        learner = make_learner(name, random_state=0, **params)
        learner.meta_fit(rest[:-1], val_tasks=rest[-1:])
        for draw in range(5):
            support, query = split_support_query(tasks[held_out], k, seed=100 * held_out + draw)
            p = learner.adapt(support).predict_proba(query.X)
            aucs.append(roc_auc_score(query.y, p))
    assert np.mean(aucs) > 0.6, f"{name}: mean AUROC {np.mean(aucs):.3f} over {len(aucs)} episodes"


# -- pooled ----------------------------------------------------------------------------------
def test_pooled_ignores_the_support_set(tasks, split_support_query) -> None:
    learner = PooledMLP(**FAST).meta_fit(tasks[:4])
    a, _ = split_support_query(tasks[5], 6, seed=0)
    b, _ = split_support_query(tasks[5], 20, seed=1)
    np.testing.assert_array_equal(
        learner.adapt(a).predict_proba(tasks[5].X), learner.adapt(b).predict_proba(tasks[5].X)
    )


def test_pooled_early_stopping_keeps_best_epoch(tasks) -> None:
    learner = PooledMLP(hidden_sizes=(32,), max_epochs=200, patience=3, lr=1e-2).meta_fit(
        tasks[:2], val_tasks=tasks[2:4]
    )
    val = learner.history_["val_loss"]
    assert len(val) < 200, "a small model on 120 rows should overfit and stop early"
    assert learner.best_epoch_ == int(np.argmin(val)) + 1
    # Stopped exactly `patience` epochs after the best one.
    assert len(val) == learner.best_epoch_ + 3


def test_pooled_without_val_runs_all_epochs(tasks) -> None:
    learner = PooledMLP(**FAST).meta_fit(tasks[:4])
    assert learner.best_epoch_ == FAST["max_epochs"]
    assert len(learner.history_["train_loss"]) == FAST["max_epochs"]
    assert learner.history_["val_loss"] == []


def _adam_steps_per_epoch(monkeypatch, learner, train) -> int:
    steps = []
    original = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    learner.meta_fit(train)
    return len(steps) // int(learner.max_epochs)


@pytest.mark.parametrize("name", ["pooled", "multitask"])
def test_a_long_table_grows_the_minibatch_instead_of_the_steps(tasks, monkeypatch, name) -> None:
    rows = sum(len(t) for t in tasks[:4])  # the toy tasks' rows (multitask holds some out)
    capped = make_learner(
        name, hidden_sizes=(8,), max_epochs=2, batch_size=8, max_batches_per_epoch=3
    )
    free = make_learner(name, hidden_sizes=(8,), max_epochs=2, batch_size=8)
    assert rows > 8 * 3
    assert _adam_steps_per_epoch(monkeypatch, capped, tasks[:4]) <= 3
    assert _adam_steps_per_epoch(monkeypatch, free, tasks[:4]) > 3  # 8-row batches otherwise


def test_a_table_below_the_step_cap_trains_exactly_as_with_no_cap(tasks) -> None:
    # the default cap (1,000 steps of 128 rows) binds only above 128,000 rows: smaller
    # tables, every benchmark here included, give the same weights as before the cap
    settings = dict(hidden_sizes=(8,), max_epochs=3, batch_size=16)
    default = PooledMLP(**settings).meta_fit(tasks[:4])
    uncapped = PooledMLP(**settings, max_batches_per_epoch=10**9).meta_fit(tasks[:4])
    for name, value in default.params_.items():
        assert torch.equal(value, uncapped.params_[name]), name


def test_pooled_training_loss_decreases(tasks) -> None:
    learner = PooledMLP(hidden_sizes=(16,), max_epochs=30, lr=1e-2).meta_fit(tasks[:4])
    losses = learner.history_["train_loss"]
    assert losses[-1] < 0.7 * losses[0]


def test_progress_is_called_once_per_epoch(tasks) -> None:
    calls: list[tuple[int, int, float]] = []
    PooledMLP(**FAST, progress=lambda i, n, loss: calls.append((i, n, loss))).meta_fit(tasks[:4])
    assert [c[:2] for c in calls] == [(i, 5) for i in range(1, 6)]
    assert all(np.isfinite(c[2]) for c in calls)


def test_progress_must_be_callable(tasks) -> None:
    with pytest.raises(MetamedTypeError, match="progress"):
        PooledMLP(**FAST, progress="yes").meta_fit(tasks[:4])


def test_mixed_outcome_types_are_rejected(tasks, make_toy_tasks) -> None:
    numeric = make_toy_tasks(outcome_type="numeric")
    with pytest.raises(MetamedValueError, match="mix outcome types"):
        PooledMLP(**FAST).meta_fit([tasks[0], numeric[1]])
    with pytest.raises(MetamedValueError, match="outcome type"):
        PooledMLP(**FAST).meta_fit(tasks[:2], val_tasks=numeric[2:3])


def test_val_tasks_with_other_width_are_rejected(tasks) -> None:
    narrow = Task("narrow", tasks[4].X[:, :3], tasks[4].y)
    with pytest.raises(MetamedValueError, match="features"):
        PooledMLP(**FAST).meta_fit(tasks[:2], val_tasks=[narrow])


def test_predict_with_wrong_width_raises(tasks, split_support_query) -> None:
    model = PooledMLP(**FAST).meta_fit(tasks[:4]).adapt(split_support_query(tasks[5], 6, 0)[0])
    with pytest.raises(MetamedValueError, match=r"shape \(n_rows, 8\)"):
        model.predict_proba(tasks[5].X[:, :4])


def test_single_class_training_data_is_rejected(tasks) -> None:
    zeros = [Task(t.name, t.X, np.zeros(len(t))) for t in tasks[:2]]
    with pytest.raises(MetamedValueError, match="one outcome class"):
        PooledMLP(**FAST).meta_fit(zeros)


# -- pooled + fine-tune ------------------------------------------------------------------------
def _weight_distance(model, anchor: dict[str, torch.Tensor]) -> float:
    return float(sum(((model.params[k] - anchor[k]) ** 2).sum() for k in anchor))


def test_finetune_with_zero_steps_is_the_pooled_model(tasks, split_support_query) -> None:
    support, query = split_support_query(tasks[5], 6, seed=0)
    pooled = PooledMLP(**FAST).meta_fit(tasks[:4])
    tuned = PooledFineTune(**FAST, finetune_steps=0).meta_fit(tasks[:4])
    np.testing.assert_array_equal(
        pooled.adapt(support).predict_proba(query.X), tuned.adapt(support).predict_proba(query.X)
    )


def test_finetune_moves_toward_support_and_anchor_limits_it(tasks, split_support_query) -> None:
    support, _ = split_support_query(tasks[5], 10, seed=0)
    free = PooledFineTune(**FAST, finetune_steps=30, anchor_strength=0.0).meta_fit(tasks[:4])
    held = free.clone()
    held.anchor_strength = 10.0
    held.meta_fit(tasks[:4])
    anchor = free.params_
    x, y = torch.from_numpy(support.X), torch.from_numpy(support.y)

    def support_loss(model) -> float:
        with torch.no_grad():
            logits = torch.logit(torch.from_numpy(model.predict_proba(support.X)).float(), 1e-7)
            return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, y))

    pooled_model = PooledMLP.adapt(free, support)
    free_model, held_model = free.adapt(support), held.adapt(support)
    assert x.shape[0] == 10
    assert support_loss(free_model) < support_loss(pooled_model)
    assert 0 < _weight_distance(held_model, anchor) < _weight_distance(free_model, anchor)


@pytest.mark.parametrize("outcome", ["binary", "numeric"])
def test_finetune_steps_are_the_autograd_steps_of_its_objective(
    outcome, tasks, numeric_tasks, split_support_query
) -> None:
    """The MLP's fine-tuning uses a written-out gradient; autograd of the stated L2-SP
    objective (support loss + anchor_strength / 2 * ||theta - theta_0||^2), stepped by
    plain gradient descent, must give the same weights."""
    train = tasks if outcome == "binary" else numeric_tasks
    learner = PooledFineTune(**FAST, finetune_steps=15, anchor_strength=0.5).meta_fit(train[:4])
    support, _ = split_support_query(train[5], 10, seed=0)
    x = torch.from_numpy(support.X)
    y = torch.from_numpy((support.y - learner.y_mean_) / learner.y_std_).float()
    anchor = learner.params_
    params = {k: v.clone().requires_grad_(True) for k, v in anchor.items()}
    net = learner._net()
    for _ in range(15):
        pull = sum(((params[k] - anchor[k]) ** 2).sum() for k in params)
        loss = learner.outcome_type_.loss(net.forward(params, x), y) + 0.25 * pull
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            params = {
                k: (p - learner.finetune_lr * g).requires_grad_(True)
                for (k, p), g in zip(params.items(), grads, strict=True)
            }
    adapted = learner.adapt(support).params
    assert _weight_distance(learner.adapt(support), anchor) > 1e-6  # it moved
    for k in anchor:
        torch.testing.assert_close(adapted[k], params[k].detach(), rtol=1e-4, atol=1e-6)


# -- local models ------------------------------------------------------------------------------
def test_local_logreg_uses_only_the_support_set(tasks, split_support_query) -> None:
    support, query = split_support_query(tasks[5], 10, seed=3)
    a = LocalLogisticRegression().meta_fit(tasks[:2])
    b = LocalLogisticRegression().meta_fit(tasks[2:5])
    assert LocalLogisticRegression.uses_meta_training is False
    p = a.adapt(support).predict_proba(query.X)
    np.testing.assert_array_equal(p, b.adapt(support).predict_proba(query.X))
    direct = LogisticRegression(C=1.0, max_iter=1000).fit(support.X, support.y.astype(int))
    np.testing.assert_allclose(p, direct.predict_proba(query.X)[:, 1], rtol=1e-10)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_local_gbm_gives_valid_probabilities_for_tiny_support(
    k: int, tasks, split_support_query
) -> None:
    support, query = split_support_query(tasks[5], k, seed=k)
    p = LocalGBM().meta_fit(tasks[:4]).adapt(support).predict_proba(query.X)
    assert p.shape == (len(query),) and np.all((p > 0) & (p < 1))
    if k < 4:
        # No split can leave 2 rows on each side: every patient gets the support prevalence.
        np.testing.assert_allclose(p, support.y.mean(), atol=1e-6)


# -- numeric outcomes --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "k"),
    [
        ("pooled", dict(hidden_sizes=(16,), max_epochs=60), 10),
        ("pooled-finetune", dict(hidden_sizes=(16,), max_epochs=60), 10),
        ("local-logreg", {}, 20),
        ("local-gbm", {}, 40),
    ],
)
def test_numeric_outcomes_are_predicted_better_than_the_mean(
    name, params, k, numeric_tasks, split_support_query
) -> None:
    learner = make_learner(name, **params).meta_fit(numeric_tasks[:4], val_tasks=numeric_tasks[4:5])
    support, query = split_support_query(numeric_tasks[5], k, seed=0)
    model = learner.adapt(support)
    assert model.outcome_type is NUMERIC
    pred = model.predict(query.X)
    assert pred.shape == (len(query),) and pred.dtype == np.float64
    mse = float(np.mean((pred - query.y) ** 2))
    mse_mean = float(np.mean((support.y.mean() - query.y) ** 2))
    assert mse < 0.8 * mse_mean, f"{name}: MSE {mse:.2f} vs support-mean MSE {mse_mean:.2f}"
    assert not hasattr(model, "predict_proba")  # a numeric model has no probabilities


def test_numeric_local_logreg_is_ridge_with_alpha_one_over_c(
    numeric_tasks, split_support_query
) -> None:
    from sklearn.linear_model import Ridge

    support, query = split_support_query(numeric_tasks[5], 12, seed=0)
    pred = (
        LocalLogisticRegression(C=0.5).meta_fit(numeric_tasks[:2]).adapt(support).predict(query.X)
    )
    direct = Ridge(alpha=2.0).fit(support.X, support.y).predict(query.X)
    np.testing.assert_allclose(pred, direct, rtol=1e-6)


def test_support_outcome_type_must_match_training(
    tasks, numeric_tasks, split_support_query
) -> None:
    learner = PooledMLP(**FAST).meta_fit(tasks[:2])
    support, _ = split_support_query(numeric_tasks[5], 6, seed=0)
    with pytest.raises(MetamedValueError, match="binary outcome"):
        learner.adapt(support)


def test_a_diverging_finetune_restarts_with_smaller_steps_and_stays_finite(
    numeric_tasks, split_support_query
) -> None:
    """One support patient with a huge standardised feature (IWPC's rare 0/1 flags reach
    ~38) made the steps explode and every prediction NaN; a smaller step adapts."""
    import dataclasses

    learner = PooledFineTune(**FAST, finetune_lr=0.5).meta_fit(numeric_tasks[:4])
    support, query = split_support_query(numeric_tasks[5], 10, seed=0)
    X = support.X.copy()
    X[0, 0] = 60.0
    wild = dataclasses.replace(support, X=X)
    pred = learner.adapt(wild).predict(query.X)
    assert np.isfinite(pred).all()
    # it still adapted: not the pooled model
    assert not np.allclose(pred, PooledMLP.adapt(learner, wild).predict(query.X))


def test_finetuning_on_a_rare_flag_keeps_sane_errors() -> None:
    """A 0/1 flag held by 1 training patient in 400 used to standardise to about 20; a
    support patient holding it blew fine-tuning up (RMSE 193 on doses of SD 5, measured
    with this seed), as on IWPC warfarin.  Left as 0/1 it adapts like any feature."""
    import pandas as pd

    from metamed.data import Cohort, Schema
    from metamed.data.preprocess import Preprocessor
    from metamed.tasks import TaskSet, make_tasks

    rng = np.random.default_rng(0)
    sites = []
    for s in range(5):
        age = rng.normal(60, 10, 100)
        flag = np.zeros(100)
        flag[: (1 if s == 0 else 2 if s == 4 else 0)] = 1.0
        dose = 35 + 0.3 * (age - 60) + rng.normal(0, 5, 100)
        sites.append(pd.DataFrame({"age": age, "flag": flag, "site": f"s{s}", "dose": dose}))
    schema = Schema(
        outcome="dose", numeric=("age", "flag"), group=("site",), outcome_type="numeric"
    )
    taskset = TaskSet(Cohort("toy", pd.concat(sites, ignore_index=True), schema))
    split = taskset.split(["s4"])
    pre = Preprocessor(schema).fit(taskset.frames(split.train))
    *train, new = make_tasks(taskset, [*split.train, *split.test], pre)
    learner = PooledFineTune(hidden_sizes=(16,), max_epochs=20).meta_fit(train)
    support, query = new.subset(np.arange(10)), new.subset(np.arange(10, 100))
    assert (support.X[:, 1] > support.X[:, 1].min()).any()  # the support holds the flag
    rmse = float(np.sqrt(np.mean((learner.adapt(support).predict(query.X) - query.y) ** 2)))
    assert np.isfinite(rmse) and rmse < 1.5 * float(query.y.std())


def test_the_pooled_mlp_is_trained_once_for_every_learner_built_on_it(tasks, monkeypatch) -> None:
    """pooled, pooled-finetune and the guard's two learners train the same MLP on a
    split; it is trained once, and each gets the weights a fresh training gives."""
    import metamed.learners.baselines as baselines

    fresh = PooledMLP(**FAST).meta_fit(tasks[:4]).params_
    trainings = []
    original = PooledMLP._fit_pooled
    monkeypatch.setattr(
        PooledMLP, "_fit_pooled", lambda self, *a: trainings.append(1) or original(self, *a)
    )
    monkeypatch.setattr(baselines, "_LAST_POOLED_FIT", [])
    learners = [PooledMLP(**FAST), PooledFineTune(**FAST, finetune_steps=3)]
    learners = [learner.meta_fit(tasks[:4]) for learner in learners]
    assert len(trainings) == 1
    for learner in learners:
        for name, value in fresh.items():
            torch.testing.assert_close(learner.params_[name], value, rtol=0, atol=0)
    PooledMLP(**FAST, random_state=1).meta_fit(tasks[:4])  # other seed: trained again
    PooledMLP(**FAST).meta_fit(list(tasks[:3]))  # other tasks: trained again
    assert len(trainings) == 3
