"""MetaPred (Zhang et al., KDD 2019): meta-learning for risk prediction in a low-resource cohort.

MetaPred meta-trains a risk model on related, data-rich *source* cohorts so that it
predicts well in a *target* cohort with few patients.  From the paper:

- the training cohorts play two roles in each meta-training step: **source domains**,
  on which the inner level updates the parameters by gradient descent, and a
  **simulated target domain**, standing in for the real low-resource target;
- the **meta-objective** is the simulated target's loss at the parameters the source
  updates produced, plus the sources' own losses weighted by ``μ`` (the outer update
  minimises ``L_T(θ') + μ Σ_i L_{S_i}``), so that the learned parameters stay good
  predictors on the sources as well as adapt toward the target;
- the meta-learned model can be used directly on the real target, and its few
  labelled patients serve for **fine-tuning**.

The paper's base predictors are a CNN and an LSTM over visit sequences of medical codes
(OHSU EHR data, cohorts for mild cognitive impairment, Alzheimer's and Parkinson's
disease).  metamed's rows are one patient each (codes as multi-hot code-set features), so
the base predictor here is the MLP every metamed learner shares; that, and the settings
below marked *ours*, are this implementation's choices, not the paper's.

One meta-training step, for each of ``meta_batch_size`` groups of ``n_sources + 1``
distinct training cohorts (the last of each group is the simulated target):

1. θ' = θ, then ``inner_steps`` times, for each source ``S_i`` in turn:
   θ' ← θ' − α ∇ L_{S_i}(θ') on the source's K-patient support set (*ours*: one step per
   source in turn, so every source cohort moves the parameters equally often);
2. loss = L_T(θ') on the simulated target's sampled patients (support and query rows of
   its episode) + ``source_weight`` · Σ_i L_{S_i}(θ') on each source's query rows (rows
   the inner step did not see);
3. θ ← Adam step on the mean loss over groups (second order through step 1 unless
   ``first_order``).

Adaptation to a new cohort is fine-tuning from θ on its support set (``adapt_steps`` SGD
steps at ``inner_lr``); early stopping uses the query loss after that fine-tuning on
fixed validation episodes, as for MAML.
"""

from __future__ import annotations

import numpy as np
import torch

from metamed.errors import MetamedValueError
from metamed.learners._params import (
    NON_NEGATIVE,
    POSITIVE_INT,
    Options,
    hyperparameter,
    hyperparameters,
)
from metamed.learners.base import register
from metamed.learners.engine import Params, adapt_params, forward, masked_loss
from metamed.learners.maml import _FirstOrderOption
from metamed.tasks.episodes import EpisodeBatch, EpisodeSampler, make_episode, stack_episodes
from metamed.tasks.task import Task

__all__ = ["MetaPred"]

#: Sources per group when ``n_sources`` is None and enough training cohorts exist (*ours*).
DEFAULT_SOURCES = 3


class _DomainSampler(EpisodeSampler):
    """Episodes in groups of ``group`` distinct cohorts: sources first, simulated target last.

    ``sample(m)`` returns ``m * group`` episodes, group after group.
    """

    def __init__(
        self,
        tasks: list[Task],
        k_support: int,
        n_query: int | None,
        rng: np.random.Generator,
        n_sources: int | None,
    ) -> None:
        super().__init__(tasks, k_support, n_query, rng)
        usable = len(self.tasks)
        if n_sources is None:  # as many as there are, up to DEFAULT_SOURCES
            n_sources = max(1, min(DEFAULT_SOURCES, usable - 1))
        if usable < n_sources + 1:
            lower = (
                f"Lower n_sources to at most {usable - 1} or pass more training cohorts."
                if usable >= 2
                else "Pass at least two training cohorts."
            )
            raise MetamedValueError(
                f"MetaPred: n_sources = {n_sources} needs {n_sources + 1} training cohorts that "
                f"can provide a K={k_support} episode (sources plus a simulated target); "
                f"{usable} can. {lower}"
            )
        self.group = n_sources + 1

    def sample(self, meta_batch_size: int) -> EpisodeBatch:
        episodes = []
        for _ in range(meta_batch_size):
            for i in self.rng.choice(len(self.tasks), self.group, replace=False):
                episodes.append(make_episode(self.tasks[i], self.k_support, self.rng, self.n_query))
        return stack_episodes(episodes)


def _grouped(t: torch.Tensor, group: int) -> torch.Tensor:
    """[M * group, ...] -> [M, group, ...]."""
    return t.reshape(t.shape[0] // group, group, *t.shape[1:])


@register("metapred")
@hyperparameters
class MetaPred(_FirstOrderOption):
    """MetaPred (Zhang, Tang, Dodge, Zhou and Wang, KDD 2019) on the shared MLP.

    Parameters
    ----------
    hidden_sizes : tuple of int, default (64, 64)
        Hidden layer widths of the MLP.
    n_sources : int or None, default None
        Source cohorts per meta-training group; one more cohort is the simulated target
        (needs ``n_sources + 1`` usable training cohorts).  None: 3, or all training
        cohorts but one when there are fewer (*ours*).
    source_weight : float, default 0.5
        ``μ``, weight of the sources' query losses in the meta-objective (0 drops them).
    inner_steps : int, default 2
        Passes over the sources in the inner level (one SGD step per source per pass).
    inner_lr : float, default 0.1
        ``α``: inner and fine-tuning SGD step size.
    outer_lr : float, default 1e-3
        ``β``: Adam learning rate of the meta-update.
    meta_batch_size : int, default 8
        Groups (sources + simulated target) per meta-update.
    meta_iterations : int, default 500
    k_support, n_query : int, default 10, 20
        Episode sizes: sources update on ``k_support`` patients and score ``n_query``;
        the simulated target scores all ``k_support + n_query`` of its episode.
    chunk_size : int or None, default None
        Groups per batched computation (bounds memory; same result).
    adapt_steps : int or None, default None
        Fine-tuning steps on a new cohort's support set (None: ``inner_steps``).
    eval_every, patience : int, default 25, 5
        Early stopping on validation episodes (query loss after fine-tuning).
    backend : {"manual"}, default "manual"
        The inner level uses the engine's batched manual MLP gradient.
    first_order : bool, default False
        Treat the inner gradients as constants.
    random_state : int or None, default 0

    Attributes
    ----------
    params_ : dict of str to Tensor
        Meta-learned MLP parameters.
    history_ : dict
        ``train_loss`` holds the meta-objective per iteration.
    n_sources_ : int
        Sources per group used by the fit.
    """

    n_sources: int | None = hyperparameter(default=None, allowed=[POSITIVE_INT, None])
    source_weight: float = hyperparameter(default=0.5, allowed=NON_NEGATIVE)
    inner_steps: int = hyperparameter(default=2, allowed=POSITIVE_INT)
    meta_batch_size: int = hyperparameter(default=8, allowed=POSITIVE_INT)
    backend: str = hyperparameter(
        default="manual",
        allowed=Options(("manual",)),
        hint="MetaPred's inner level batches the groups with the manual MLP gradient.",
    )

    def _make_sampler(self, tasks: list[Task], rng: np.random.Generator) -> EpisodeSampler:
        sampler = _DomainSampler(tasks, self.k_support, self.n_query, rng, self.n_sources)
        self.n_sources_ = sampler.group - 1
        return sampler

    def _group_loss(self, params: Params, chunk: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Meta-objective of each group of ``chunk`` ([M, group, rows, ...] tensors): [M]."""
        sx, sy, sm, qx, qy, qm = chunk
        n = self.n_sources_
        adapted = params
        for _ in range(int(self.inner_steps)):
            for i in range(n):
                adapted = adapt_params(
                    adapted, sx[:, i], sy[:, i], sm[:, i],
                    inner_lr=float(self.inner_lr), inner_steps=1,
                    outcome_type=self.outcome_type_, first_order=self._first_order(),
                )  # fmt: skip
        tx = torch.cat([sx[:, n], qx[:, n]], dim=1)
        ty = torch.cat([sy[:, n], qy[:, n]], dim=1)
        tm = torch.cat([sm[:, n], qm[:, n]], dim=1)
        target = masked_loss(forward(adapted, tx), ty, tm, self.outcome_type_)
        sources = torch.stack(
            [
                masked_loss(forward(adapted, qx[:, i]), qy[:, i], qm[:, i], self.outcome_type_)
                for i in range(n)
            ]
        ).sum(0)
        return target + float(self.source_weight) * sources

    def _train_step(self, state: dict[str, Params], batch: EpisodeBatch, iteration: int) -> float:
        group = self.n_sources_ + 1
        tensors = [_grouped(t, group) for t in batch._tensors()]
        n_groups = int(tensors[0].shape[0])
        step = n_groups if self.chunk_size is None else int(self.chunk_size)
        params = state["params"]
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        totals = {k: torch.zeros_like(v) for k, v in params.items()}
        loss_sum = 0.0
        for start in range(0, n_groups, step):
            chunk = tuple(t[start : start + step] for t in tensors)
            loss = self._group_loss(leaves, chunk).sum() / n_groups
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            for key, g in zip(leaves, grads, strict=True):
                if g is not None:
                    totals[key] += g
            loss_sum += float(loss.detach())
        for key, g in totals.items():
            params[key].grad = g
        assert self._optimizer is not None  # made by _make_optimizer for the whole _fit
        self._optimizer.step()
        return loss_sum
