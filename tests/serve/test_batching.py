"""Dynamic batching of predict calls: each call gets its own answer (or its own error),
whether it ran alone or in a batch, and concurrent calls do share model calls."""

from __future__ import annotations

import threading
import time

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


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def run_concurrently(batcher, work, model, calls):
    answers: list = [None] * len(calls)

    def one(i):
        try:
            answers[i] = batcher(model, calls[i])
        except InvalidInputError as error:
            answers[i] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    wait_until(lambda: work.sizes)  # the first call is running: the others queue behind it
    for t in threads[1:]:
        t.start()
    wait_until(lambda: sum(len(q) for q in batcher._waiting.values()) == len(calls) - 1)
    work.release.set()
    for t in threads:
        t.join(10)
    return answers


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
    threads = [
        threading.Thread(target=batcher, args=(m, [{"model": id(m)}]))
        for m in [a, b] * 20
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(len(models) == 1 for models in seen)
    assert batcher.calls == 40


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
