"""Concurrent predict calls on one model share one model call (dynamic batching).

Checking rows and running a model cost about the same for one patient as for a hundred
(the fixed cost of building a table and calling the network dominates), so a service that
answers single-patient calls one by one spends its cores on overhead.  Here the first
call on a model becomes the *leader*: it takes every call waiting on that model at that
moment (up to ``max_rows`` rows), runs them as one batch, hands each call its own slice,
and leaves the lead to the next waiting call once its own answer is ready.  Nothing waits
for a batch to fill: a lone call runs at once, and batches form only from calls that
arrive while a batch is being computed.

Each row's answer does not depend on the other rows of its batch (checking, preprocessing
and the models work row by row), so a batched answer is the call's own answer, up to
float32 rounding of the model's matrix products.  When the batch fails (one call's rows
break the schema, say), every call of that batch is run alone, so that each gets its own
answer or its own error, naming its own row numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["PredictBatcher"]

Model = TypeVar("Model")
Columns = dict[str, np.ndarray]


@dataclass(eq=False)
class _Call:
    records: Sequence[Any]
    done: bool = False
    result: Columns | None = None
    error: BaseException | None = None

    def answer(self) -> Columns:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class PredictBatcher(Generic[Model]):
    """Run ``work(model, records) -> columns`` for concurrent calls, batched per model.

    Parameters
    ----------
    work : callable
        Checks ``records`` (a list of patient rows) and predicts them; returns arrays with
        one entry per row (e.g. ``risk``, ``holds_0``, ``holds_1``).
    max_rows : int
        Most rows in one batch (a single call larger than this still runs, alone).
    """

    def __init__(self, work: Callable[[Model, Sequence[Any]], Columns], max_rows: int) -> None:
        self._work = work
        self.max_rows = int(max_rows)
        self._cond = threading.Condition()
        self._waiting: dict[int, list[_Call]] = {}
        self._leading: set[int] = set()
        #: How many batches ran and how many calls they answered (for the load benchmark).
        self.batches = 0
        self.calls = 0

    def __call__(self, model: Model, records: Sequence[Any]) -> Columns:
        call = _Call(records)
        key = id(model)  # the waiting calls hold the model, so the id is not reused meanwhile
        with self._cond:
            self._waiting.setdefault(key, []).append(call)
            while not call.done and key in self._leading:
                self._cond.wait()
            if call.done:
                return call.answer()
            self._leading.add(key)
        try:
            while not call.done:
                with self._cond:
                    batch = self._take(key)
                    self.batches += 1
                    self.calls += len(batch)
                self._run(model, batch)
                with self._cond:
                    for c in batch:
                        c.done = True
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leading.discard(key)
                if not self._waiting.get(key):
                    self._waiting.pop(key, None)
                self._cond.notify_all()  # a waiting call takes the lead
        return call.answer()

    def _take(self, key: int) -> list[_Call]:
        """The waiting calls, oldest first, up to ``max_rows`` rows (at least one call)."""
        queue = self._waiting[key]
        batch, rows = [queue[0]], len(queue[0].records)
        for c in queue[1:]:
            if rows + len(c.records) > self.max_rows:
                break
            batch.append(c)
            rows += len(c.records)
        del queue[: len(batch)]
        return batch

    def _run(self, model: Model, batch: list[_Call]) -> None:
        if len(batch) > 1:
            try:
                columns = self._work(model, [r for c in batch for r in c.records])
            except Exception:  # noqa: BLE001 - each call is rerun alone and gets its own error
                pass
            else:
                start = 0
                for c in batch:
                    stop = start + len(c.records)
                    c.result = {name: values[start:stop] for name, values in columns.items()}
                    start = stop
                return
        for c in batch:
            try:
                c.result = self._work(model, c.records)
            except Exception as error:  # noqa: BLE001 - re-raised in the call's own thread
                c.error = error
