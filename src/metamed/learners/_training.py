"""Training-loop pieces shared by the learners (private).

:class:`EarlyStopping` is the one early-stopping rule of the pooled MLP, ProtoNet and
the MLP meta-learners: keep the state with the lowest validation loss seen so far and
stop after ``patience`` evaluations in a row without a strictly lower loss.
:func:`fit_minibatches` is the one supervised training loop (Adam over shuffled
minibatches, early-stopped by epoch) of the pooled and the multitask networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

__all__ = [
    "EarlyStopping", "MinibatchFit", "detach_params", "epoch_batch_size", "fit_minibatches",
]  # fmt: skip

State = TypeVar("State")


class EarlyStopping(Generic[State]):
    """Track the best validation loss and a snapshot of the state that reached it.

    Parameters
    ----------
    initial_state : object
        Snapshot kept until some evaluation beats ``best_loss`` (a NaN validation loss
        never does, so the initial state is what survives a run of NaNs).
    patience : int or None
        Evaluations without improvement before :meth:`update` asks to stop; None never
        stops.
    best_loss : float, default inf
        Loss to beat, e.g. the validation loss of the initial state.

    Attributes
    ----------
    best_state : object
        Snapshot of the best state so far.
    best_loss : float
    best_step : int
        Step (epoch or iteration) of ``best_state``; 0 until an evaluation improves.
    stale : int
        Evaluations since the last improvement.
    """

    def __init__(
        self, initial_state: State, patience: int | None, best_loss: float = math.inf
    ) -> None:
        self.best_state = initial_state
        self.patience = patience
        self.best_loss = best_loss
        self.best_step = 0
        self.stale = 0

    def update(self, loss: float, step: int, snapshot: Callable[[], State]) -> bool:
        """Record the validation ``loss`` at ``step``; return True when training should stop.

        ``snapshot`` is called only when ``loss`` improves on the best so far, so the
        state is copied no more often than needed.
        """
        if loss < self.best_loss:
            self.best_state = snapshot()
            self.best_loss, self.best_step, self.stale = loss, step, 0
            return False
        self.stale += 1
        return self.patience is not None and self.stale >= self.patience


@dataclass(frozen=True)
class MinibatchFit:
    """What :func:`fit_minibatches` returns: the kept parameters (detached copies), the
    epoch they come from, and the per-epoch ``train_loss`` and ``val_loss``."""

    params: dict[str, torch.Tensor]
    best_epoch: int
    history: dict[str, list[float]]


def detach_params(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached copies of ``params`` (a snapshot that later steps do not change)."""
    return {k: v.detach().clone() for k, v in params.items()}


def epoch_batch_size(n_rows: int, batch_size: int, max_batches_per_epoch: int) -> int:
    """Rows per minibatch: ``batch_size``, grown so an epoch is at most
    ``max_batches_per_epoch`` steps.

    An epoch is a pass over every training row, and early stopping looks once per epoch.
    On a million-row table, 128-row minibatches make an epoch thousands of Adam steps
    (the bring-your-own-table benchmark spent most of its time there) where a few hundred
    larger ones learn a 64-64 network as well; tables of up to ``batch_size x
    max_batches_per_epoch`` rows (128,000 by default) train exactly as before.
    """
    return max(batch_size, math.ceil(n_rows / max_batches_per_epoch))


def fit_minibatches(
    params: dict[str, torch.Tensor],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    rows: torch.Tensor,
    val_loss: Callable[[], torch.Tensor] | None,
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_batches_per_epoch: int,
    max_epochs: int,
    patience: int,
    generator: torch.Generator,
    progress: Callable[[int, int, float], None] | None,
) -> MinibatchFit:
    """Train ``params`` with Adam on shuffled minibatches of ``rows``, epoch by epoch.

    ``batch_loss(idx)`` is the mean loss of the rows ``idx`` (a tensor of row indices
    drawn from ``rows``); each epoch visits every row once in a fresh order from
    ``generator``.  After each epoch ``progress(epoch, max_epochs, train_loss)`` is
    called and, when ``val_loss`` is given, its value (computed without gradients)
    decides early stopping: the kept parameters are those of the epoch with the lowest
    validation loss.  Without ``val_loss`` every epoch runs and the last one is kept.

    A minibatch holds ``batch_size`` rows, or more where ``rows`` is so long that an epoch
    would take more than ``max_batches_per_epoch`` Adam steps (:func:`epoch_batch_size`).
    """
    batch_size = epoch_batch_size(len(rows), batch_size, max_batches_per_epoch)
    opt = torch.optim.Adam(params.values(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    stopper = EarlyStopping(detach_params(params), patience)
    for epoch in range(1, max_epochs + 1):
        order = rows[torch.randperm(len(rows), generator=generator)]
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history["train_loss"].append(total / max(len(order), 1))
        if progress is not None:
            progress(epoch, max_epochs, history["train_loss"][-1])
        if val_loss is None:
            continue
        with torch.no_grad():
            loss_now = float(val_loss())
        history["val_loss"].append(loss_now)
        if stopper.update(loss_now, epoch, lambda: detach_params(params)):
            break
    if val_loss is None:
        return MinibatchFit(detach_params(params), len(history["train_loss"]), history)
    return MinibatchFit(stopper.best_state, stopper.best_step, history)
