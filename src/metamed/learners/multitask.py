"""The multitask network: one shared body, one output head per training task.

The strongest simple competitor of meta-learning in few-shot molecular property
prediction is not a pooled model but multitask pretraining (FS-Mol's "MT" baseline,
Stanley et al., NeurIPS Datasets and Benchmarks 2021): every training task keeps its own
output unit, so tasks whose labels disagree (an active in one assay, inactive in another)
shape a shared representation instead of cancelling out in one output.

``meta_fit`` trains the body and the heads together, each row's loss on its own task's
head.  ``adapt`` keeps the body frozen and fits a new head on the support set by MAP
estimation under a prior *learned from the training heads*: centred on their mean, with
each coordinate's variance their variance across tasks (an empirical-Bayes prior, as a
hierarchical model would estimate it).  With one labelled example the new head stays near
the average task; with many it follows the support set.  The fit is the same convex
problem as the updating methods' (:func:`~metamed.learners.updating.map_offset_fit`), so
a support set of one class gives a finite, prior-shrunk head.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch

from metamed.learners._params import (
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Callback,
    Interval,
    LayerWidths,
    hyperparameter,
    hyperparameters,
)
from metamed.learners._training import fit_minibatches
from metamed.learners.base import MetaLearner, ProgressCallback, register
from metamed.learners.baselines import MLPModel, adapted_mlp, pooled_rows
from metamed.learners.mlp import Params, init_mlp, relu_layers
from metamed.learners.updating import map_offset_fit
from metamed.outcomes import BINARY, NUMERIC
from metamed.tasks.task import Task

__all__ = ["MultitaskMLP"]

_SEED_HINT = "Pass e.g. random_state=0; results are reproducible only with a fixed seed."


@register("multitask")
@hyperparameters
class MultitaskMLP(MetaLearner):
    """A shared MLP body with one head per training task; new tasks get a new head.

    Parameters
    ----------
    hidden_sizes : sequence of int, default (64, 64)
        Widths of the shared body (the same default as the other networks).
    lr : float, default 1e-3
        Adam learning rate.
    batch_size : int, default 128
        Rows per minibatch (rows of all tasks, shuffled together).
    max_batches_per_epoch : int, default 1000
        Minibatches grow beyond ``batch_size`` rows where an epoch would take more steps
        than this (tables of over 128,000 training rows at the defaults).
    max_epochs : int, default 100
        Passes over the training rows.
    patience : int, default 10
        Early stopping on held-out rows of the training tasks (``val_fraction`` of each
        task's rows, scored with that task's own head).
    val_fraction : float, default 0.1
        Share of each training task's rows held out for early stopping.
    prior_strength : float, default 1.0
        Multiplies the learned prior's precision at adaptation (larger: new heads stay
        closer to the average training head).
    random_state : int, default 0
        Seed for the initial weights, the held-out rows and the minibatch order.
    progress : callable(epoch, max_epochs, train_loss) or None
        Called after every epoch.

    Notes
    -----
    ``val_tasks`` are checked but not used: a new task has no head until it is adapted,
    so early stopping looks at held-out rows of the training tasks instead.
    """

    outcome_types = (BINARY, NUMERIC)

    hidden_sizes: Sequence[int] = hyperparameter(default=(64, 64), allowed=LayerWidths())
    lr: float = hyperparameter(default=1e-3, allowed=POSITIVE)
    batch_size: int = hyperparameter(default=128, allowed=POSITIVE_INT)
    max_batches_per_epoch: int = hyperparameter(default=1000, allowed=POSITIVE_INT)
    max_epochs: int = hyperparameter(default=100, allowed=POSITIVE_INT)
    patience: int = hyperparameter(default=10, allowed=POSITIVE_INT)
    val_fraction: float = hyperparameter(default=0.1, allowed=Interval(Real, 0.0, 0.5))
    prior_strength: float = hyperparameter(default=1.0, allowed=POSITIVE)
    random_state: int = hyperparameter(default=0, allowed=SEED, hint=_SEED_HINT)
    progress: ProgressCallback | None = hyperparameter(default=None, allowed=[Callback(), None])

    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> MultitaskMLP:
        """Train the body and one head per task on ``train_tasks`` (each row on its task's head)."""
        rows = pooled_rows(self, train_tasks, val_tasks)
        outcome = rows.outcome
        scaling = outcome.fit_scaling(rows.y)
        task_of = np.concatenate([np.full(len(t), i) for i, t in enumerate(train_tasks)])
        rng = np.random.default_rng(int(self.random_state))
        held = np.zeros(len(task_of), dtype=bool)
        for i in range(len(train_tasks)):
            mine = np.flatnonzero(task_of == i)
            n_held = int(len(mine) * float(self.val_fraction))
            held[rng.choice(mine, n_held, replace=False)] = True
        x = torch.from_numpy(rows.X)
        y = torch.from_numpy(scaling.transform(rows.y)).float()
        t = torch.from_numpy(task_of)
        fit_idx = torch.from_numpy(np.flatnonzero(~held))
        val_idx = torch.from_numpy(np.flatnonzero(held))

        gen = torch.Generator().manual_seed(int(self.random_state))
        widths = [int(w) for w in self.hidden_sizes]
        body = init_mlp([rows.n_features, *widths], gen)
        heads = init_mlp([widths[-1], len(train_tasks)], gen)  # row i of w0 is task i's head
        params = {**body, "hw": heads["w0"], "hb": heads["b0"]}
        for tensor in params.values():
            tensor.requires_grad_(True)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            features = _body_features(params, x[idx])
            out = (features * params["hw"][t[idx]]).sum(-1) + params["hb"][t[idx]]
            return outcome.loss(out, y[idx])

        fit = fit_minibatches(
            params,
            loss_of,
            fit_idx,
            (lambda: loss_of(val_idx)) if len(val_idx) else None,
            lr=float(self.lr),
            weight_decay=0.0,
            batch_size=int(self.batch_size),
            max_batches_per_epoch=int(self.max_batches_per_epoch),
            max_epochs=int(self.max_epochs),
            patience=int(self.patience),
            generator=gen,
            progress=self.progress,
        )
        best = fit.params
        self.body_ = {k: v for k, v in best.items() if k not in ("hw", "hb")}
        self.heads_ = torch.cat([best["hw"], best["hb"][:, None]], dim=1).double().numpy()
        self.n_features_ = rows.n_features
        self.outcome_type_ = outcome
        self.y_mean_ = scaling.mean
        self.y_std_ = scaling.std
        self.best_epoch_ = fit.best_epoch
        self.history_ = fit.history
        return self

    def adapt(self, support: Task) -> MLPModel:
        """A new head on the frozen body: MAP under the prior learned from the training heads."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        with torch.no_grad():
            features = _body_features(self.body_, torch.from_numpy(support.X)).double().numpy()
        mean = self.heads_.mean(axis=0)  # [w..., b]
        spread = self.heads_.var(axis=0) if len(self.heads_) > 1 else np.ones_like(mean)
        precision = float(self.prior_strength) / np.maximum(spread, 1e-6)
        design = np.column_stack([features, np.ones(len(features))])
        y = support.y if self.outcome_type_ is BINARY else (support.y - self.y_mean_) / self.y_std_
        head = mean + map_offset_fit(design, y, design @ mean, precision, self.outcome_type_)
        params: Params = {
            **self.body_,
            f"w{len(self.body_) // 2}": torch.from_numpy(head[None, :-1]).float(),
            f"b{len(self.body_) // 2}": torch.from_numpy(head[-1:]).float(),
        }
        return adapted_mlp(self.outcome_type_, params, self.n_features_, self.y_mean_, self.y_std_)


def _body_features(params: Params, x: torch.Tensor) -> torch.Tensor:
    """The shared body's output: its layers (every ``w{i}``, ``b{i}``; not the heads), with ReLU."""
    return relu_layers(params, x, sum(1 for k in params if k.startswith("w")))
