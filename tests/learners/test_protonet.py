"""ProtoNet: prototypes, the vectorised episode loss, temperature and prior, chance level."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.learners.protonet import (
    ProtoNet,
    _batch_loss,
    embed,
    proto_logits,
    prototypes,
)
from metamed.tasks import Task, make_episode, stack_episodes

FAST = dict(
    hidden_sizes=(16,),
    embedding_dim=8,
    k_support=6,
    n_query=10,
    meta_batch_size=4,
    n_iterations=20,
    eval_every=10,
)


@pytest.fixture(scope="module")
def tasks(make_toy_tasks) -> list[Task]:
    return make_toy_tasks()


def test_protonet_beats_chance_on_synthetic_tasks(make_toy_tasks, split_support_query) -> None:
    # Measured on this problem with these settings: mean AUROC 0.73 (seed 0), 0.80, 0.85.
    tasks = make_toy_tasks(seed=0, n_rows=100)
    aucs = []
    for held_out in (3, 4, 5):
        rest = [t for i, t in enumerate(tasks) if i != held_out]
        learner = ProtoNet(hidden_sizes=(32,), embedding_dim=16, n_iterations=150)
        learner.meta_fit(rest[:-1], val_tasks=rest[-1:])
        for draw in range(5):
            support, query = split_support_query(tasks[held_out], 10, seed=100 * held_out + draw)
            aucs.append(roc_auc_score(query.y, learner.adapt(support).predict_proba(query.X)))
    assert np.mean(aucs) > 0.6, f"mean AUROC {np.mean(aucs):.3f} over {len(aucs)} episodes"


def test_meta_training_lowers_the_episode_loss(tasks) -> None:
    learner = ProtoNet(**{**FAST, "n_iterations": 200}).meta_fit(tasks[:5])
    losses = np.asarray(learner.history_["train_loss"])
    assert losses[-40:].mean() < 0.85 * losses[:40].mean()


def test_predictions_are_softmax_over_negative_distances(tasks, split_support_query) -> None:
    learner = ProtoNet(**FAST, prior_correction=False).meta_fit(tasks[:5])
    support, query = split_support_query(tasks[5], 8, seed=0)
    p = learner.adapt(support).predict_proba(query.X)
    with torch.no_grad():
        e_s = embed(learner.params_, torch.from_numpy(support.X)).double().numpy()
        e_q = embed(learner.params_, torch.from_numpy(query.X)).double().numpy()
    centres = [e_s[support.y == c].mean(axis=0) for c in (0, 1)]
    width = e_s.shape[1]
    scale = np.exp(learner.log_scale_)
    neg_dist = np.stack([-scale * ((e_q - c) ** 2).sum(axis=1) / width for c in centres], axis=1)
    softmax = np.exp(neg_dist - neg_dist.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, softmax[:, 1], rtol=1e-4, atol=1e-6)


def test_prior_correction_adds_the_support_log_odds(tasks) -> None:
    learner = ProtoNet(**FAST).meta_fit(tasks[:5])
    task = tasks[5]
    idx = np.concatenate([np.flatnonzero(task.y == 1)[:1], np.flatnonzero(task.y == 0)[:3]])
    support = task.subset(idx)
    with_prior = learner.adapt(support).predict_proba(task.X)
    learner.prior_correction = False
    without = learner.adapt(support).predict_proba(task.X)
    logit = np.log(with_prior / (1 - with_prior))
    np.testing.assert_allclose(logit, np.log(without / (1 - without)) + np.log(1 / 3), atol=1e-4)


def test_vectorised_loss_equals_loop_over_episodes(tasks) -> None:
    rng = np.random.default_rng(0)
    # Different K and query sizes so that the batch really is padded.
    episodes = [
        make_episode(tasks[0], 4, rng, 7),
        make_episode(tasks[1], 9, rng, 12),
        make_episode(tasks[2], 6, rng, 3),
    ]
    batch = stack_episodes(episodes)
    assert float(batch.support_mask.sum()) < batch.support_mask.numel()
    learner = ProtoNet(**FAST).meta_fit(tasks[:5])
    log_scale = torch.tensor(learner.log_scale_)
    batched = float(_batch_loss(learner.params_, log_scale, batch, True))

    total, count = 0.0, 0
    for ep in episodes:
        s_x = torch.from_numpy(ep.task.X[ep.support_idx])
        s_y = torch.from_numpy(ep.task.y[ep.support_idx])
        q_y = torch.from_numpy(ep.task.y[ep.query_idx])
        c0 = embed(learner.params_, s_x[s_y == 0]).mean(0)
        c1 = embed(learner.params_, s_x[s_y == 1]).mean(0)
        log_odds = torch.log((s_y == 1).sum() / (s_y == 0).sum())
        q_emb = embed(learner.params_, torch.from_numpy(ep.task.X[ep.query_idx]))
        logits = proto_logits(q_emb, c0, c1, log_scale, log_odds)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, q_y, reduction="sum")
        total += float(bce)
        count += len(q_y)
    assert batched == pytest.approx(total / count, rel=1e-5)


def test_prototypes_ignore_padding_rows() -> None:
    emb = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [99.0, 99.0]]])
    y = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    c0, c1, log_odds = prototypes(emb, y, mask)
    torch.testing.assert_close(c0, torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(c1, torch.tensor([[0.0, 2.0]]))
    torch.testing.assert_close(log_odds, torch.log(torch.tensor([0.5])))


def test_temperature_is_learned_only_when_asked(tasks) -> None:
    fixed = ProtoNet(**FAST, learn_temperature=False).meta_fit(tasks[:5])
    learned = ProtoNet(**FAST, learn_temperature=True).meta_fit(tasks[:5])
    assert fixed.log_scale_ == 0.0
    assert learned.log_scale_ != 0.0


def test_early_stopping_keeps_the_best_evaluation(tasks) -> None:
    learner = ProtoNet(**{**FAST, "n_iterations": 60, "patience": 100}).meta_fit(
        tasks[:4], val_tasks=tasks[4:5]
    )
    val = learner.history_["val_loss"]
    assert len(val) == 6  # every 10 iterations
    assert learner.best_iteration_ == 10 * (int(np.argmin(val)) + 1)


def test_numeric_outcomes_are_rejected(tasks) -> None:
    numeric = [Task(t.name, t.X, t.X[:, 0], "numeric") for t in tasks[:3]]
    with pytest.raises(MetamedValueError, match="binary outcome"):
        ProtoNet(**FAST).meta_fit(numeric)


def test_val_tasks_too_small_for_k_are_named(tasks) -> None:
    tiny = tasks[4].subset(np.arange(5))
    with pytest.raises(MetamedValueError, match="val_tasks"):
        ProtoNet(**FAST).meta_fit(tasks[:4], val_tasks=[tiny])


def test_small_training_tasks_are_skipped_and_recorded(tasks) -> None:
    tiny = Task("tiny", tasks[0].X[:4], np.array([0, 1, 0, 1]))
    learner = ProtoNet(**FAST).meta_fit([*tasks[:3], tiny])
    assert list(learner.skipped_tasks_) == ["tiny"]


def test_progress_is_called_every_iteration(tasks) -> None:
    calls: list[int] = []
    ProtoNet(**FAST, progress=lambda i, n, loss: calls.append(i)).meta_fit(tasks[:3])
    assert calls == list(range(1, FAST["n_iterations"] + 1))


@pytest.mark.parametrize(
    "bad, error",
    [
        (dict(embedding_dim=0), MetamedValueError),
        (dict(n_query=0), MetamedValueError),
        (dict(learn_temperature="yes"), MetamedTypeError),  # the wrong type
        (dict(lr=float("nan")), MetamedValueError),
    ],
)
def test_more_bad_hyperparameters(bad, error, tasks) -> None:
    with pytest.raises(error, match=f"ProtoNet: {next(iter(bad))} must be"):
        ProtoNet(**{**FAST, **bad}).meta_fit(tasks[:3])
