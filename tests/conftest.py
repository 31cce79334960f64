"""Shared fixtures: where real datasets live, the skip/fail rule for tests that need them,
and the small synthetic task problem used by the learner tests.

Rule: a test that needs real data is *skipped* only when ``METAMED_DATA_DIR`` is unset
(a machine without data).  When the variable is set, missing data is a broken setup
and the test *fails*, so that CI with data never passes silently by skipping.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from metamed.tasks import Task, sample_support_query

# One torch thread: the tests use tiny models, where a second thread gains nothing and,
# on a loaded 2-core machine, busy-waiting threads made the suite up to 10x slower.  The
# commands' default (--threads unset) follows OMP_NUM_THREADS, so a command run by a test
# keeps one thread too, and so do the subprocesses the tests start.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

DATA_DIR_ENV = "METAMED_DATA_DIR"


@pytest.fixture(autouse=True)
def _restore_device() -> Iterator[None]:
    """A command run by a test sets the process's --device (auto: a GPU where there is
    one); the next test starts from the device the session started with."""
    from metamed import device

    before = device._current
    yield
    device._current = before


def how_to_get(folder: str | None = None) -> str:
    """How a user gets the data a test needs: the command for each dataset stored in
    ``folder`` (all of them when None), ``metamed data fetch`` where the files can be
    downloaded, ``metamed datasets NAME`` (which says where to obtain them) where not."""
    from metamed.data import DATASETS

    specs = [s for s in DATASETS.values() if s.files and folder in (None, s.folder)]
    fetchable = [s.name for s in specs if all(f.url for f in s.files)]
    manual = [s.name for s in specs if not all(f.url for f in s.files)]
    ways = []
    if fetchable:
        ways.append(f"metamed data fetch {'|'.join(fetchable)} --dest DIR")
    if manual:
        ways.append(f"metamed datasets {'|'.join(manual)} (where to obtain it)")
    return " or ".join(ways) or "metamed datasets (lists the datasets and where to get them)"


def _data_dir_or_skip(folder: str | None = None) -> Path:
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        pytest.skip(
            f"needs real data: set {DATA_DIR_ENV}=DIR, a folder holding the dataset folders; "
            f"get the data with {how_to_get(folder)}"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.fail(f"{DATA_DIR_ENV}={value} is set but that directory does not exist.")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data directory from ``METAMED_DATA_DIR`` (skip if unset, fail if missing)."""
    return _data_dir_or_skip()


def require_dataset(folder: str) -> Path:
    """Path of dataset ``folder`` under ``METAMED_DATA_DIR``.

    Skips when the variable is unset; fails (never skips) when it is set but the
    directory or the dataset's folder is missing.  Call it inside a test or fixture.
    """
    root = _data_dir_or_skip(folder)
    path = root / folder
    if not path.is_dir():
        pytest.fail(
            f"{DATA_DIR_ENV}={root} is set but the dataset folder '{folder}' is missing there; "
            f"get it ({how_to_get(folder).replace('DIR', str(root))}) or unset {DATA_DIR_ENV}."
        )
    return path


@pytest.fixture(scope="session")
def uci_heart_dir() -> Path:
    """Folder of the UCI Heart Disease files (skip/fail rule as :func:`require_dataset`)."""
    return require_dataset("uci-heart-disease")


@pytest.fixture(scope="session")
def need_dataset():
    """:func:`require_dataset` as a fixture, for test modules that cannot import conftest.

    Usage: ``def test_x(need_dataset): folder = need_dataset("support2")``.
    """
    return require_dataset


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def serve():
    """A loopback HTTP server factory: ``with serve(folder) as base_url: ...``."""
    return _serve


def _toy_tasks(
    n_tasks: int = 6,
    n_features: int = 8,
    seed: int = 0,
    n_rows: int = 60,
    outcome_type: str = "binary",
) -> list[Task]:
    """Tasks sharing a linear model, each with its own weight and intercept shift.

    Binary tasks draw y from the logistic model; numeric tasks use the linear predictor
    plus unit Gaussian noise.  Each task's features also get their own mean shift, so
    tasks differ in their inputs as well as in their outcome model.
    """
    rng = np.random.default_rng(seed)
    w_shared = rng.normal(size=n_features)
    tasks = []
    for t in range(n_tasks):
        w = w_shared + 0.5 * rng.normal(size=n_features)
        b = rng.normal(scale=0.5)
        X = rng.normal(size=(n_rows, n_features)) + rng.normal(scale=0.3, size=n_features)
        eta = X @ w + b
        if outcome_type == "binary":
            y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float32)
        else:
            y = eta + rng.normal(size=n_rows)
        tasks.append(Task(f"task{t}", X, y, outcome_type))
    return tasks


@pytest.fixture(scope="session")
def make_toy_tasks():
    """Factory of the learner tests' synthetic problem (seeded, so calls are reproducible).

    Usage: ``def test_x(make_toy_tasks): tasks = make_toy_tasks(n_rows=100)``; keyword
    arguments ``n_tasks=6, n_features=8, seed=0, n_rows=60, outcome_type="binary"``.
    """
    return _toy_tasks


def _support_query(task: Task, k: int, seed: int) -> tuple[Task, Task]:
    """A K-shot support set of ``task`` and the disjoint query set (the remaining rows)."""
    support, query = sample_support_query(task, k, np.random.default_rng(seed))
    return task.subset(support), task.subset(query)


@pytest.fixture(scope="session")
def split_support_query():
    """``split_support_query(task, k, seed) -> (support, query)`` as a fixture."""
    return _support_query


def _write_medmnist_set(
    folder: Path, file: str, sizes: dict[str, int], seed: int, dims: int = 2, side: int = 28
) -> None:
    """One MedMNIST-layout npz of random ``side`` x ``side`` images (``dims`` = 3:
    ``side``^3 binary masks, as AdrenalMNIST3D's), labels alternating 0 / 1."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in sizes.items():
        if dims == 2:
            images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        else:  # at 64^3 a random 8^3 corner: with more voxels a chance copy of the label
            c = 28 if side == 28 else 8  # (the cohort's leakage check) becomes likely
            images = np.zeros((n, side, side, side), dtype=np.uint8)
            images[:, :c, :c, :c] = rng.integers(0, 2, (n, c, c, c)) * 255
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1)
    np.savez(folder / file, **arrays)


@pytest.fixture(scope="session")
def tiny_medmnist(tmp_path_factory) -> Path:
    """A folder of the three MedMNIST files at toy size (no data needed): read it with
    ``get_source("medmnist").loader(folder, sets=..., corruptions=...)``."""
    folder = tmp_path_factory.mktemp("medmnist")
    _write_medmnist_set(folder, "breastmnist_28.npz", {"train": 6, "val": 2, "test": 4}, 0)
    _write_medmnist_set(
        folder, "pneumoniamnist_28_modified.npz", {"train": 8, "val": 2, "test": 4}, 1
    )
    _write_medmnist_set(
        folder, "adrenalmnist3d_28.npz", {"train": 6, "val": 2, "test": 4}, 2, dims=3
    )
    _write_medmnist_set(
        folder, "adrenalmnist3d_64.npz", {"train": 6, "val": 2, "test": 4}, 3, dims=3, side=64
    )
    return folder
