"""MetaPred: groups of distinct cohorts, its meta-gradient against a looped autograd
reference, and the errors a user can meet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamed.errors import MetamedValueError
from metamed.learners import MetaPred
from metamed.learners.metapred import _DomainSampler
from metamed.learners.mlp import init_mlp, mlp_forward
from metamed.outcomes import BINARY
from metamed.tasks import Task


def _tasks(n_tasks: int, rows: int = 30, seed: int = 0) -> list[Task]:
    """Task ``i`` has feature 0 equal to ``i`` on every row, so episodes name their cohort."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        x = rng.normal(size=(rows, 3)).astype(np.float32)
        x[:, 0] = i
        y = (rng.random(rows) < 0.4).astype(np.float32)
        y[:2] = [0.0, 1.0]
        tasks.append(Task(f"t{i}", x, y))
    return tasks


def test_each_group_draws_distinct_cohorts_target_last() -> None:
    sampler = _DomainSampler(_tasks(5), 4, 6, np.random.default_rng(0), n_sources=3)
    batch = sampler.sample(30)
    cohorts = batch.support_x[:, 0, 0].reshape(30, 4)
    for row in cohorts.tolist():
        assert len(set(row)) == 4, "a group repeated a cohort"
    # every cohort serves as simulated target at some point
    assert set(cohorts[:, -1].tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_too_few_cohorts_for_the_groups_is_one_clear_error() -> None:
    learner = MetaPred(n_sources=3, meta_iterations=2, k_support=4, n_query=6)
    with pytest.raises(MetamedValueError, match="n_sources = 3 needs 4 training cohorts"):
        learner.meta_fit(_tasks(3))
    with pytest.raises(MetamedValueError, match="Pass at least two training cohorts"):
        MetaPred(meta_iterations=2, k_support=4, n_query=6).meta_fit(_tasks(1))


def test_by_default_the_sources_are_three_or_all_cohorts_but_one() -> None:
    fast = dict(hidden_sizes=(4,), meta_iterations=2, k_support=4, n_query=6)
    assert MetaPred(**fast).meta_fit(_tasks(3)).n_sources_ == 2
    assert MetaPred(**fast).meta_fit(_tasks(6)).n_sources_ == 3


def _reference_loss(learner: MetaPred, params: dict, chunk: tuple) -> torch.Tensor:
    """The meta-objective of one group, looped with torch.autograd.grad(create_graph)."""
    sx, sy, sm, qx, qy, qm = (t[0] for t in chunk)
    n = learner.n_sources_

    def loss(p: dict, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.binary_cross_entropy_with_logits(
            mlp_forward(p, x).squeeze(-1), y, reduction="none"
        )
        return (rows * m).sum() / m.sum()

    fast = dict(params)
    for _ in range(learner.inner_steps):
        for i in range(n):
            grads = torch.autograd.grad(
                loss(fast, sx[i], sy[i], sm[i]), list(fast.values()), create_graph=True
            )
            fast = {
                k: v - learner.inner_lr * g for (k, v), g in zip(fast.items(), grads, strict=True)
            }
    target = loss(
        fast, torch.cat([sx[n], qx[n]]), torch.cat([sy[n], qy[n]]), torch.cat([sm[n], qm[n]])
    )
    sources = sum(loss(fast, qx[i], qy[i], qm[i]) for i in range(n))
    return target + learner.source_weight * sources


def test_meta_gradient_matches_looped_reference() -> None:
    learner = MetaPred(n_sources=2, inner_steps=2, inner_lr=0.3, source_weight=0.7)
    learner.outcome_type_ = BINARY
    learner.n_sources_ = 2
    sampler = _DomainSampler(_tasks(5), 5, 7, np.random.default_rng(1), n_sources=2)
    batch = sampler.sample(4)
    tensors = [t.reshape(4, 3, *t.shape[1:]) for t in batch._tensors()]
    params = {
        k: v.double() for k, v in init_mlp([3, 6, 1], torch.Generator().manual_seed(0)).items()
    }
    tensors = [t.double() for t in tensors]
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    batched = learner._group_loss(leaves, tuple(tensors)).mean()
    got = torch.autograd.grad(batched, list(leaves.values()))
    ref_leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ref = (
        sum(
            _reference_loss(learner, ref_leaves, tuple(t[g : g + 1] for t in tensors))
            for g in range(4)
        )
        / 4
    )
    want = torch.autograd.grad(ref, list(ref_leaves.values()))
    assert abs(float(batched.detach()) - float(ref.detach())) < 1e-10
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-10)
    assert max(float(w.abs().max()) for w in want) > 1e-3  # not vacuous


def test_the_source_term_moves_the_meta_gradient() -> None:
    """``source_weight`` = 0 and > 0 give different fits: the μ term is really used."""
    tasks = _tasks(5, rows=40)
    fast = dict(hidden_sizes=(8,), meta_iterations=5, k_support=5, n_query=8, n_sources=2)
    a = MetaPred(source_weight=0.0, **fast).meta_fit(tasks)
    b = MetaPred(source_weight=2.0, **fast).meta_fit(tasks)
    assert any(not torch.equal(a.params_[k], b.params_[k]) for k in a.params_)
