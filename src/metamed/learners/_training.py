"""Training-loop pieces shared by the learners (private).

:class:`EarlyStopping` is the one early-stopping rule of the pooled MLP, ProtoNet and
the MLP meta-learners: keep the state with the lowest validation loss seen so far and
stop after ``patience`` evaluations in a row without a strictly lower loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["EarlyStopping"]

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
