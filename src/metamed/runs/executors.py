"""Executors: who runs a plan's jobs.  Same plan, same tables, under every one of them.

- :class:`SerialExecutor` (default): one job after another in this process; shows
  meta-training iterations as it goes.
- :class:`ProcessExecutor` (``--jobs N``): N local worker processes.  Workers are
  *spawned*, not forked (forking a process that has started torch's thread pools can
  hang), and each gets ``threads // N`` torch threads (``threads``: the command's
  ``--threads``, see :mod:`metamed.threads`) so that N workers do not oversubscribe the
  machine.
- :class:`RayExecutor` (``--executor ray [--address ADDR]``): tasks on a Ray cluster, a
  local one started for the run or an existing one.  A fit's score jobs receive its fitted
  model by reference from Ray's object store; the cluster's workers must have metamed
  installed (``pip install 'metamed[ray]'``).

Every executor yields each finished job with its result as soon as it is done (so a run
folder can record it), in whatever order jobs finish; :func:`metamed.evaluation.protocol.collect`
puts the rows back in plan order.  Results are identical because every job is a pure
function of itself and its data (the seeds travel inside the job).
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from metamed.device import current_device
from metamed.errors import MetamedValueError, did_you_mean
from metamed.evaluation.protocol import (
    FitJob,
    FittedMethod,
    IterationHook,
    Plan,
    ProtocolConfig,
    ScoreJob,
    ScoreResult,
    iter_serial,
    run_fit,
    run_score,
)
from metamed.tasks import TaskSet

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
]

Finished = Iterator[tuple[FitJob | ScoreJob, FittedMethod | ScoreResult]]


class Executor(ABC):
    """Runs the jobs of a plan that are not ``done`` and yields each as it finishes."""

    @abstractmethod
    def run(
        self,
        plan: Plan,
        taskset: TaskSet,
        done: Collection[str] = (),
        on_iteration: IterationHook | None = None,
    ) -> Finished: ...

    @staticmethod
    def todo(plan: Plan, done: Collection[str]) -> list[tuple[FitJob, list[ScoreJob]]]:
        """Fit jobs that still have score jobs to do, with those score jobs."""
        pairs = [(f, [s for s in plan.scores_of(f) if s.key not in done]) for f in plan.fits]
        return [(f, scores) for f, scores in pairs if scores]


class SerialExecutor(Executor):
    """One job after another, in this process."""

    def run(self, plan, taskset, done=(), on_iteration=None) -> Finished:
        yield from iter_serial(plan, taskset, done, on_iteration)

    def __repr__(self) -> str:
        return "SerialExecutor()"


# -- local processes ------------------------------------------------------------------------
_WORKER_TASKSET: TaskSet | None = None


def _start_worker(taskset: TaskSet, threads: int, device: str = "cpu") -> None:
    from metamed.device import set_device
    from metamed.threads import set_threads

    global _WORKER_TASKSET
    _WORKER_TASKSET = taskset
    # torch, numba and BLAS as in the parent (set_threads): a spawned worker starts with
    # OpenBLAS's default pool, and a multi-threaded BLAS sums in another order, so a
    # pooled logistic regression on PhysioNet 2012 scored up to 5e-4 AUROC away from the
    # serial run's
    set_threads(threads)
    set_device(device)  # the command's --device (spawned workers start on the CPU)


def _fit_in_worker(job: FitJob, config: ProtocolConfig) -> FittedMethod:
    assert _WORKER_TASKSET is not None, "worker started without its task set"
    return run_fit(job, _WORKER_TASKSET, config)


class ProcessExecutor(Executor):
    """``jobs`` worker processes on this machine."""

    def __init__(self, jobs: int) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise MetamedValueError(f"--jobs must be a whole number >= 1, got {jobs!r}.")
        self.jobs = jobs

    def run(self, plan, taskset, done=(), on_iteration=None) -> Finished:
        import torch

        todo = self.todo(plan, done)
        if not todo:
            return
        # the workers share the command's threads (--threads, metamed.threads) between them
        threads = max(1, torch.get_num_threads() // self.jobs)
        pool = ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(taskset, threads, str(current_device())),
        )
        pending: dict[Future, tuple[FitJob | ScoreJob, list[ScoreJob]]] = {}
        try:
            for fit, scores in todo:
                pending[pool.submit(_fit_in_worker, fit, plan.config)] = (fit, scores)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job, scores = pending.pop(future)
                    result = future.result()
                    yield job, result
                    for score in scores:  # a fit's score jobs start once it is done
                        submitted = pool.submit(run_score, score, result, plan.config, plan.dataset)
                        pending[submitted] = (score, [])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ProcessExecutor(jobs={self.jobs})"


# -- Ray ------------------------------------------------------------------------------------
class RayExecutor(Executor):
    """Tasks on a Ray cluster: ``address`` of a running one, or a local one for the run.

    A local cluster listens on 127.0.0.1 only and gets ``num_cpus`` CPUs (default: all);
    it is shut down when the run ends.  A cluster that was already connected is left running.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MetamedValueError(
                "--executor ray needs Ray: pip install 'metamed[ray]' (or pip install ray)."
            ) from None
        self.address, self.num_cpus = address, num_cpus

    def _connect(self) -> bool:
        """Connect (or start a local cluster); True when this call started the connection."""
        import ray

        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            options.update(num_cpus=self.num_cpus, _node_ip_address="127.0.0.1")
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except ConnectionError as error:
            raise MetamedValueError(
                f"Cannot reach the Ray cluster at {self.address}: {error}. Start it with "
                "`ray start --head`, or leave out --address to run a local cluster."
            ) from None
        return True

    def run(self, plan, taskset, done=(), on_iteration=None) -> Finished:
        todo = self.todo(plan, done)
        if not todo:
            return
        import ray

        started = self._connect()
        try:
            fit_task = ray.remote(run_fit)
            score_task = ray.remote(run_score)
            taskset_ref = ray.put(taskset)
            pending: dict[Any, tuple[FitJob | ScoreJob, list[ScoreJob]]] = {}
            for fit, scores in todo:
                pending[fit_task.remote(fit, taskset_ref, plan.config)] = (fit, scores)
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                job, scores = pending.pop(ready)
                result = ray.get(ready)
                yield job, result
                for score in scores:  # the fitted model goes by reference, once per node
                    ref = score_task.remote(score, ready, plan.config, plan.dataset)
                    pending[ref] = (score, [])
        finally:
            if started:
                ray.shutdown()

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"


EXECUTORS = ("serial", "processes", "ray")


def make_executor(name: str = "serial", jobs: int = 1, address: str | None = None) -> Executor:
    """The executor the command line asks for (``--executor``, ``--jobs``, ``--address``).

    ``--jobs N`` with N > 1 and no ``--executor`` means local processes.
    """
    if name not in EXECUTORS:
        raise MetamedValueError(
            f"Unknown executor '{name}'.{did_you_mean(name, EXECUTORS)} Use one of {', '.join(EXECUTORS)}."
        )
    if address is not None and name != "ray":
        raise MetamedValueError("--address names a Ray cluster; use it with --executor ray.")
    if name == "ray":
        return RayExecutor(address, num_cpus=jobs if jobs > 1 else None)
    if name == "processes" or jobs > 1:
        return ProcessExecutor(jobs)
    return SerialExecutor()
