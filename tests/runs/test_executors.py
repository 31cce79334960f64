"""One spec, bit-identical tables under the serial, process and Ray executors."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from metamed.data import make_synthetic_cohort
from metamed.evaluation.protocol import FitJob, ProtocolConfig, collect, plan
from metamed.learners import make_learner
from metamed.runs import ProcessExecutor, RayExecutor, SerialExecutor, execute
from metamed.tasks import TaskSet

CONFIG = ProtocolConfig(shots=(4, 8), draws=2, seed=3)


def small_plan():
    taskset = TaskSet(make_synthetic_cohort(n_tasks=3, n_per_task=40, n_features=4, seed=3))
    methods = {  # a meta-learner (torch) and a scikit-learn baseline, seeded
        "fomaml": make_learner("fomaml", meta_iterations=3, hidden_sizes=(8,), random_state=3),
        "local-logreg": make_learner("local-logreg", random_state=3),
    }
    splits = list(taskset.leave_one_out())[:2]
    return plan(taskset, methods, splits, CONFIG, "toy"), taskset


def tables(executor):
    the_plan, taskset = small_plan()
    result = execute(the_plan, taskset, executor)
    return result.results, result.predictions


@pytest.fixture(scope="module")
def serial():
    return tables(SerialExecutor())


def assert_identical(a, b) -> None:
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)


def test_serial_tables_cover_the_plan(serial):
    results, predictions = serial
    assert len(results.groupby(["method", "task", "k", "draw"])) == 2 * 2 * 2 * 2
    assert results["value"].notna().any() and len(predictions) > 0


def test_collect_puts_rows_in_plan_order_whatever_order_jobs_finished(serial):
    the_plan, taskset = small_plan()
    finished = list(SerialExecutor().run(the_plan, taskset))
    seconds = {job.key: r.seconds for job, r in finished if isinstance(job, FitJob)}
    scores = {job.key: r for job, r in reversed(finished) if not isinstance(job, FitJob)}
    result = collect(the_plan, scores, seconds)
    assert_identical((result.results, result.predictions), serial)


def test_processes_give_identical_tables(serial):
    assert_identical(tables(ProcessExecutor(2)), serial)


def _worker_threads() -> dict:
    from metamed.threads import thread_record

    return thread_record()


def test_a_worker_computes_with_the_parents_thread_settings(monkeypatch):
    # the tables above are too small for BLAS to use a second thread; on real tables
    # a worker with OpenBLAS's default pool fitted different numbers than the serial run.
    # A spawned worker's OpenBLAS would start with OMP_NUM_THREADS threads: 2 here.
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from metamed.runs.executors import _start_worker

    the_plan, taskset = small_plan()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(taskset, 1),
    ) as pool:  # fmt: skip
        record = pool.submit(_worker_threads).result()
    assert record["torch_threads"] == 1
    assert record["blas_threads"] in (1, None)  # None: no BLAS library loaded


@pytest.mark.slow
def test_ray_gives_identical_tables(serial, monkeypatch):
    pytest.importorskip("ray", reason="Ray is the optional extra metamed[ray]")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    assert not ray.is_initialized()
    assert_identical(tables(RayExecutor(num_cpus=2)), serial)  # a local cluster on 127.0.0.1
    assert not ray.is_initialized()  # shut down again: the executor started it


def test_unknown_executor_and_misplaced_address():
    from metamed.errors import MetamedError
    from metamed.runs import make_executor

    with pytest.raises(MetamedError, match="Did you mean 'processes'"):
        make_executor("proceses")
    with pytest.raises(MetamedError, match="--executor ray"):
        make_executor("serial", address="127.0.0.1:6379")
    assert isinstance(make_executor("serial", jobs=2), ProcessExecutor)
    assert os.cpu_count()
