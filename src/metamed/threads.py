"""How many threads a run computes with: chosen once per command, applied, recorded.

A command's ``--threads`` wins; without it the default is ``OMP_NUM_THREADS`` when set
(the variable every OpenMP and BLAS library honours, so a cluster job's limit holds),
otherwise the physical cores this process may run on. Physical, not logical: a
hyper-threaded core gives torch's small matrix products almost nothing, and oversubscribed
threads are what hurt: under load a small MAML benchmark took 35-117 s with torch's
default threads and 14 s with one (issue 7).

The choice is applied to torch's intra-op pool and numba's (:func:`set_threads`) and recorded in a run's
provenance (:func:`thread_record`); workers of a parallel executor share it between them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metamed.errors import MetamedValueError

__all__ = [
    "default_threads", "physical_cores", "set_threads", "single_threaded", "thread_record",
]  # fmt: skip

_CPUINFO = Path("/proc/cpuinfo")


def _available_cpus() -> set[int]:
    """Logical CPUs this process may run on (a container's or taskset's limit included)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity API, every CPU counts
        return set(range(os.cpu_count() or 1))


def physical_cores(cpuinfo: Path = _CPUINFO) -> int:
    """Physical cores among the CPUs this process may run on.

    Read from ``/proc/cpuinfo`` (one ``physical id``/``core id`` pair per core, shared by
    its hyper-threads); where that file is missing or says nothing of cores (not Linux,
    some virtual machines) every available logical CPU counts as a core.
    """
    available = _available_cpus()
    try:
        text = cpuinfo.read_text()
    except OSError:
        return max(1, len(available))
    cores: set[tuple[str, str]] = set()
    for block in text.strip().split("\n\n"):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in block.splitlines())
        )
        if "processor" not in fields or "core id" not in fields:
            return max(1, len(available))
        if int(fields["processor"]) in available:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return max(1, len(cores))


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, otherwise :func:`physical_cores`.

    Raises
    ------
    MetamedValueError
        ``OMP_NUM_THREADS`` is set to something other than a positive whole number.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return physical_cores()
    first = value.split(",")[0]  # OpenMP's nested form "4,2": the outer level counts
    if not first.isdigit() or int(first) < 1:
        raise MetamedValueError(
            f"OMP_NUM_THREADS must be a positive whole number such as 2, got {value!r}; "
            "fix or unset it, or pass --threads."
        )
    return int(first)


def set_threads(threads: int | None = None) -> int:
    """Make torch (and numba, the dosing kernel's compiler) compute with ``threads`` threads.

    ``threads`` defaults to :func:`default_threads`; returns the number applied. Only
    torch's intra-op pool is set: its inter-op pool can be sized once, before any parallel
    work, and a library call cannot know that. numba reads ``NUMBA_NUM_THREADS`` when it is
    imported, so the variable is set for a numba not yet imported, and a numba already
    imported is told directly (within the pool it started with).

    numpy's and scipy's BLAS (OpenBLAS) get one thread whatever ``threads`` is. metamed's
    numpy work is small: support-set baselines of K rows, metrics, recalibration. On such
    sizes a second BLAS thread only busy-waits, and a BLAS pool spinning beside torch's pool
    oversubscribes the cores the run was given. On a loaded machine a small logistic
    regression was about ten times slower with two OpenBLAS threads than with one, and the
    README's UCI Heart command fits 320 of them per local method.

    numba is told first. Its OpenMP threading layer starts its pool lazily, on the first
    parallel call or ``numba.set_num_threads``, and starting it sets the OpenMP thread
    count of the whole process to ``NUMBA_NUM_THREADS``: torch uses the same libgomp, so a
    torch count set before that start was silently overwritten.
    """
    import torch

    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MetamedValueError(f"threads must be a positive whole number, got {threads!r}.")
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    else:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    _one_blas_thread()
    return threads


def _one_blas_thread() -> None:
    """Limit every loaded BLAS library (numpy's, scipy's) to one thread, for the process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One torch thread and one BLAS thread inside the block (the benchmark suites).

    The suites' models are tiny MLPs and their baselines fit thousands of tiny support
    sets: a second thread only busy-waits (on the loaded 2-core machine meta-training
    slowed several-fold, and a 50 x 191 logistic regression took 0.17 s with two OpenBLAS
    threads and 0.03 s with one).  The previous counts are restored on leaving.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)


def thread_record() -> dict[str, object]:
    """What a run's provenance says about threads: used, available, and where it came from."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "physical_cores": physical_cores(),
        "logical_cpus": len(_available_cpus()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "blas_threads": max((pool["num_threads"] for pool in _blas_pools()), default=None),
    }


def _blas_pools() -> list[dict[str, Any]]:
    """threadpoolctl's description of each loaded BLAS library."""
    from threadpoolctl import threadpool_info

    return [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
