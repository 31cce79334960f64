"""Concurrent predict calls on one model share one model call (dynamic batching).

Checking rows and running a model cost about the same for one patient as for a hundred
(the fixed cost of building a table and calling the network dominates), so a service that
answers single-patient calls one by one spends its cores on overhead.  Calls wait on the
service's event loop, holding no thread: the first call on a model starts a batch in a
worker thread, and every call on that model arriving while it is computed joins the next
batch (up to ``max_rows`` rows), which starts as soon as the first is done.  Nothing waits
for a batch to fill: a lone call runs at once, and batches form only from calls that
arrive while a batch is being computed.

(An earlier version let every waiting call hold a server thread and elect a leader: with
32 concurrent clients a batch held 2.3 calls on average, because the waiting threads
fought the computing one for the interpreter lock; on the loop, queueing a call costs a
list append.)

Each row's answer does not depend on the other rows of its batch (checking, preprocessing
and the models work row by row), so a batched answer is the call's own answer, up to
float32 rounding of the model's matrix products.  When the batch fails (one call's rows
break the schema, say), every call of that batch is run alone, so that each gets its own
answer or its own error, naming its own row numbers.
"""

from __future__ import annotations

import asyncio
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
    answered: asyncio.Future[None]
    result: Columns | None = None
    error: BaseException | None = None

    def answer(self) -> Columns:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class PredictBatcher(Generic[Model]):
    """``await batcher(model, records)`` runs ``work(model, records) -> columns`` for
    concurrent calls on one event loop, batched per model, in worker threads.

    Parameters
    ----------
    work : callable
        Checks ``records`` (a list of patient rows) and predicts them; returns arrays with
        one entry per row (e.g. ``risk``, ``holds_0``, ``holds_1``).  It runs in a worker
        thread, one batch of a model at a time.
    max_rows : int
        Most rows in one batch (a single call larger than this still runs, alone).
    """

    def __init__(self, work: Callable[[Model, Sequence[Any]], Columns], max_rows: int) -> None:
        self._work = work
        self.max_rows = int(max_rows)
        self._waiting: dict[int, list[_Call]] = {}  # per model, calls not yet in a batch
        self._running: set[int] = set()  # models with a batch being computed
        self._drains: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        #: How many batches ran and how many calls they answered (for the load benchmark).
        self.batches = 0
        self.calls = 0

    async def __call__(self, model: Model, records: Sequence[Any]) -> Columns:
        call = _Call(records, asyncio.get_running_loop().create_future())
        key = id(model)  # the waiting calls hold the model, so the id is not reused meanwhile
        self._waiting.setdefault(key, []).append(call)
        if key not in self._running:
            self._running.add(key)
            drain = asyncio.ensure_future(self._drain(model, key))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        # shield: a client that hangs up cancels its own wait, never the batch it is in
        await asyncio.shield(call.answered)
        return call.answer()

    async def _drain(self, model: Model, key: int) -> None:
        """Run the model's waiting calls batch after batch until none is left."""
        try:
            while self._waiting.get(key):
                batch = self._take(self._waiting[key])
                self.batches += 1
                self.calls += len(batch)
                try:
                    await asyncio.to_thread(self._run, model, batch)
                except BaseException as error:  # noqa: BLE001 - e.g. the loop shutting down
                    for c in batch:
                        c.error = c.error or error
                    raise
                finally:
                    for c in batch:
                        if not c.answered.done():
                            c.answered.set_result(None)
        finally:
            self._running.discard(key)
            if not self._waiting.get(key):
                self._waiting.pop(key, None)

    def _take(self, queue: list[_Call]) -> list[_Call]:
        """The waiting calls, oldest first, up to ``max_rows`` rows (at least one call)."""
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
            except Exception as error:  # noqa: BLE001 - re-raised in the call's own coroutine
                c.error = error
