"""Reptile (Nichol, Achiam and Schulman, 2018): meta-learning without second derivatives.

For each task of a meta-batch, run ``inner_steps`` SGD steps from the meta-parameters
θ on all rows of the task's episode (support and query together), giving φ_i; then
move θ toward the average adapted parameters,

    θ ← θ + ε_t · (mean_i φ_i − θ),

with the meta step size ε_t annealed linearly from ``outer_lr`` to 0 over
``meta_iterations`` (as in the paper).  The inner loops of a meta-batch run as one
batched computation (the engine's manual gradient broadcasts over the task axis), and
no outer graph is built at all.  Adaptation at test time is plain fine-tuning from θ
on the support set (``adapt_steps`` SGD steps, default ``inner_steps``).
"""

from __future__ import annotations

from numbers import Real

import torch

from metamed.learners._params import Interval, hyperparameter, hyperparameters
from metamed.learners.base import register
from metamed.learners.engine import Params, adapt_params, forward, masked_loss
from metamed.learners.maml import GradientMetaLearner
from metamed.tasks.episodes import EpisodeBatch

__all__ = ["Reptile"]


@register("reptile")
@hyperparameters
class Reptile(GradientMetaLearner):
    """Reptile meta-learner on the shared MLP.

    Parameters
    ----------
    hidden_sizes : tuple of int, default (64, 64)
        Hidden layer widths of the MLP.
    inner_steps : int, default 5
        SGD steps on each training episode (support + query rows).
    inner_lr : float, default 0.1
        Inner-loop (and test-time fine-tuning) SGD step size.
    outer_lr : float, default 0.5
        Initial meta step size ε, in (0, 1] (an interpolation toward the adapted
        parameters), annealed linearly to 0.
    meta_batch_size : int, default 16
    meta_iterations : int, default 500
    k_support : int, default 10
    n_query : int or None, default 20
        Episode sizes; during meta-training both parts are used for the inner loop,
        during validation the query part scores the fine-tuned model.
    chunk_size : int or None, default None
        Tasks per batched inner loop (bounds memory; same result).
    adapt_steps : int or None, default None
        Fine-tuning steps at adaptation (None: ``inner_steps``).
    eval_every : int, default 25
    patience : int or None, default 5
        Early stopping on the validation query loss, as for :class:`~metamed.learners.maml.MAML`.
    backend : {"manual", "func", "lowrank"}, default "manual"
        "manual" and "lowrank" batch the inner loop; "func" loops over the tasks.
    random_state : int or None, default 0

    Notes
    -----
    ``history_["train_loss"]`` holds, per iteration, the mean loss of the adapted
    parameters φ_i on their own episode rows (Reptile has no query loss to report).
    """

    outer_lr: float = hyperparameter(
        default=0.5,
        allowed=Interval(Real, 0, 1, "right"),
        hint="Reptile's outer_lr is an interpolation step toward the adapted parameters.",
    )

    def _adapted_tasks(
        self, params: Params, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor
    ) -> Params:
        """Adapted parameters per task, shape [B, ...] (no autograd graph)."""
        if self.backend != "func":
            return adapt_params(
                params, x, y, m, inner_lr=float(self.inner_lr), inner_steps=int(self.inner_steps),
                outcome_type=self.outcome_type_, backend=self.backend,
            )  # fmt: skip
        per_task = [
            adapt_params(
                params,
                x[i],
                y[i],
                m[i],
                inner_lr=float(self.inner_lr),
                inner_steps=int(self.inner_steps),
                outcome_type=self.outcome_type_,
                backend="func",
            )  # fmt: skip
            for i in range(x.shape[0])
        ]
        return {k: torch.stack([p[k] for p in per_task]) for k in params}

    def _train_step(self, state: dict[str, Params], batch: EpisodeBatch, iteration: int) -> float:
        params = state["params"]
        step = float(self.outer_lr) * (1.0 - (iteration - 1) / int(self.meta_iterations))
        mean_adapted = {k: torch.zeros_like(v) for k, v in params.items()}
        loss_sum = 0.0
        step_size = batch.size if self.chunk_size is None else int(self.chunk_size)
        with torch.no_grad():
            for start in range(0, batch.size, step_size):
                chunk = batch.chunk(start, min(start + step_size, batch.size))
                # Reptile trains on the whole episode: support and query rows together.
                x = torch.cat([chunk.support_x, chunk.query_x], dim=1)
                y = torch.cat([chunk.support_y, chunk.query_y], dim=1)
                m = torch.cat([chunk.support_mask, chunk.query_mask], dim=1)
                adapted = self._adapted_tasks(params, x, y, m)
                for k in params:
                    mean_adapted[k] += adapted[k].sum(0) / batch.size
                loss_sum += float(masked_loss(forward(adapted, x), y, m, self.outcome_type_).sum())
            for k in params:
                params[k] += step * (mean_adapted[k] - params[k])
        return loss_sum / batch.size
