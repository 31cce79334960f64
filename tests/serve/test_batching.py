"""Dynamic batching of predict calls: each call gets its own answer (or its own error),
whether it ran alone or in a batch, and concurrent calls do share model calls."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from metamed.errors import InvalidInputError
from metamed.serve.batching import PredictBatcher


class Doubler:
    """A stand-in model: the answer of a row is twice its value; a negative value is an
    error naming its row; the first call blocks until released, so others queue behind."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, model: object, records):
        with self.lock:
            first = not self.sizes
            self.sizes.append(len(records))
        if first:
            assert self.release.wait(10)
        for i, r in enumerate(records):
            if r["x"] < 0:
                raise InvalidInputError(f"Row {i}: negative", row=i)
        return {"y": np.array([2.0 * r["x"] for r in records])}


async def until(condition, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def run_concurrently(batcher, work, model, calls):
    """Each call's answer (or error): the first runs alone while all others queue."""

    async def one(records):
        try:
            return await batcher(model, records)
        except InvalidInputError as error:
            return error

    async def main():
        first = asyncio.ensure_future(one(calls[0]))
        await until(lambda: work.sizes)  # the first call is running: the others queue behind it
        rest = [asyncio.ensure_future(one(c)) for c in calls[1:]]
        await until(lambda: sum(len(q) for q in batcher._waiting.values()) == len(calls) - 1)
        work.release.set()
        return await asyncio.wait_for(asyncio.gather(first, *rest), 10)

    return asyncio.run(main())


def make(max_rows=100):
    work = Doubler()
    return PredictBatcher(work, max_rows), work


def test_concurrent_calls_share_one_batch_and_each_gets_its_own_rows():
    batcher, work = make()
    calls = [[{"x": float(i)}] for i in range(1, 9)] + [[{"x": 10.0}, {"x": 11.0}]]
    answers = run_concurrently(batcher, work, object(), calls)
    for call, answer in zip(calls, answers, strict=True):
        assert answer["y"].tolist() == [2 * r["x"] for r in call]
    assert work.sizes == [1, 9]  # the first alone, the 8 that queued in one batch
    assert (batcher.batches, batcher.calls) == (2, 9)


def test_a_bad_call_in_a_batch_gets_its_own_error_and_the_others_their_answers():
    batcher, work = make()
    calls = [[{"x": 1.0}], [{"x": 2.0}], [{"x": 3.0}, {"x": -1.0}], [{"x": 4.0}]]
    answers = run_concurrently(batcher, work, object(), calls)
    assert isinstance(answers[2], InvalidInputError) and answers[2].row == 1  # its own row
    assert [a["y"].tolist() for i, a in enumerate(answers) if i != 2] == [[2.0], [4.0], [8.0]]


def test_batches_never_exceed_max_rows():
    batcher, work = make(max_rows=3)
    calls = [[{"x": 1.0}]] + [[{"x": 1.0}, {"x": 2.0}]] * 4
    answers = run_concurrently(batcher, work, object(), calls)
    assert all(a["y"].tolist() == [2 * r["x"] for r in c] for a, c in zip(answers, calls, strict=True))
    assert max(work.sizes) <= 3 and sum(work.sizes) == 9


def test_different_models_are_never_batched_together():
    seen: list[set] = []

    def work(model, records):
        seen.append({r["model"] for r in records} | {id(model)})
        return {"y": np.zeros(len(records))}

    batcher = PredictBatcher(work, 100)
    a, b = object(), object()

    async def main():
        await asyncio.gather(*(batcher(m, [{"model": id(m)}]) for m in [a, b] * 20))

    asyncio.run(main())
    assert all(len(models) == 1 for models in seen)
    assert batcher.calls == 40


def test_a_caller_that_hangs_up_leaves_the_others_of_its_batch_answered():
    """A cancelled wait (the client disconnected) must not cancel the batch it is in."""
    batcher, work = make()

    async def main():
        model = object()
        first = asyncio.ensure_future(batcher(model, [{"x": 1.0}]))
        await until(lambda: work.sizes)  # running: the next two queue behind it
        quitter = asyncio.ensure_future(batcher(model, [{"x": 2.0}]))
        stayer = asyncio.ensure_future(batcher(model, [{"x": 3.0}]))
        await until(lambda: len(batcher._waiting[id(model)]) == 2)
        quitter.cancel()
        work.release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, stayer), 10)
        return [a["y"].tolist() for a in answers], quitter.cancelled()

    answers, cancelled = asyncio.run(main())
    assert answers == [[2.0], [6.0]] and cancelled
    assert work.sizes == [1, 2]  # the quitter's rows were still computed, with the stayer's


@pytest.fixture(scope="module")
def service_models(deploy_dir, tmp_path_factory):
    """A service over a folder holding one model adapted to the new hospital, and that
    hospital's patients as JSON records."""
    import json
    import shutil

    import pandas as pd

    from metamed.serve import adapt_pipeline, load_model
    from metamed.serve.app import Service

    root = tmp_path_factory.mktemp("batching")
    shutil.copytree(deploy_dir / "models" / "meta", root / "meta")
    parent = load_model(root / "meta", "meta")
    support, _ = parent.schema.check_frame(pd.read_csv(deploy_dir / "support.csv"), True)
    adapt_pipeline(parent, support, "sha", 0.9, "auto").save(root / "site")
    patients = pd.read_csv(deploy_dir / "patients.csv")[parent.schema.names]
    service = Service(root, 10_000, 10_000_000)
    yield service, "site", json.loads(patients.to_json(orient="records"))
    service.audit.close()


def test_a_batch_of_patients_gets_the_answers_each_gets_alone(service_models):
    """Over the real checking, preprocessing and conformal model: what the service
    computes for patients batched together equals each patient's own call (float32
    rounding of the matrix products aside), so batching never changes an answer."""
    from metamed.serve.models import predict_records

    service, model_id, patients = service_models
    served = service.store.get(model_id)
    together = predict_records(served, patients)
    assert set(together) == {"risk", "holds_0", "holds_1"}
    for i, patient in enumerate(patients):
        alone = predict_records(served, [patient])
        np.testing.assert_allclose(together["risk"][i], alone["risk"][0], rtol=1e-5)
        assert together["holds_0"][i] == alone["holds_0"][0]
        assert together["holds_1"][i] == alone["holds_1"][0]
