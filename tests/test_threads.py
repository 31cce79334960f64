"""Threads: the default honours OMP_NUM_THREADS, else physical cores; applied to torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from metamed import threads
from metamed.errors import MetamedValueError

# Two physical cores with two hyper-threads each: processors 0/2 share core 0, 1/3 core 1.
HYPERTHREADED = "\n\n".join(
    f"processor\t: {p}\nphysical id\t: 0\ncore id\t\t: {p % 2}\nmodel name\t: x" for p in range(4)
)


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_physical_cores_counts_cores_not_hyperthreads(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(HYPERTHREADED)
    monkeypatch.setattr(threads, "_available_cpus", lambda: {0, 1, 2, 3})
    assert threads.physical_cores(cpuinfo) == 2
    # a process pinned to the two hyper-threads of one core has one core
    monkeypatch.setattr(threads, "_available_cpus", lambda: {0, 2})
    assert threads.physical_cores(cpuinfo) == 1


def test_physical_cores_without_core_ids_counts_logical_cpus(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\nBogoMIPS\t: 50")
    monkeypatch.setattr(threads, "_available_cpus", lambda: {0, 1, 2})
    assert threads.physical_cores(cpuinfo) == 3
    assert threads.physical_cores(tmp_path / "missing") == 3


def test_default_threads_honours_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested OpenMP: the outer level
    assert threads.default_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == threads.physical_cores()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "2.5"])
def test_bad_omp_num_threads_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    with pytest.raises(MetamedValueError, match="OMP_NUM_THREADS must be a positive whole"):
        threads.default_threads()


def test_set_threads_applies_to_torch(restore_torch_threads, monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)  # restored afterwards
    assert threads.set_threads(1) == 1
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.set_threads() == 2
    assert threads.thread_record()["torch_threads"] == 2
    assert threads.thread_record()["OMP_NUM_THREADS"] == "2"
    with pytest.raises(MetamedValueError, match="positive whole number"):
        threads.set_threads(0)


def test_set_threads_gives_blas_one_thread_whatever_torch_gets(restore_torch_threads):
    # numpy's OpenBLAS spinning a second thread beside torch's pool oversubscribes the cores
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library reported by threadpoolctl")
    before = min(p["num_threads"] for p in blas)
    try:
        threadpool_limits(limits=2, user_api="blas")
        threads.set_threads(2)
        assert torch.get_num_threads() == 2
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
        assert threads.thread_record()["blas_threads"] == 1
    finally:
        threadpool_limits(limits=before, user_api="blas")


def test_set_threads_holds_for_torch_once_numba_is_imported():
    # numba imported but its pool not started: starting it (OpenMP layer) sets the whole
    # process's OpenMP thread count, torch's included, to NUMBA_NUM_THREADS. A fresh
    # interpreter, because whether this test's process has started numba's pool depends on
    # which tests ran before.
    code = (
        "import numba, torch\n"
        "torch.get_num_threads()\n"  # torch's thread pool initialised, as by any parallel torch work
        "from metamed import threads\n"
        "threads.set_threads(1)\n"
        "numba.get_num_threads()\n"
        "print(torch.get_num_threads(), numba.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["NUMBA_NUM_THREADS"] = "2"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
