"""The one percentile bootstrap behind every interval metamed reports, seeded per cell.

Benchmark summaries, paired comparisons and the dosing page's paired differences all
resample their units (held-out tasks, patients) here.  Each interval draws from its own
random stream, derived from the run's seed and the **identity of the cell** it belongs
to (for example ``("paired", dataset, method, reference, metric, k)``), never from a
stream shared with other cells.  So an interval is a function of its data, the seed and
its identity alone: computing it alone or among a hundred others, in any order, or in
another process gives the same bounds (``tests/evaluation/test_bootstrap.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from metamed.errors import MetamedValueError

__all__ = ["ConfidenceInterval", "cell_rng", "bootstrap_ci"]


@dataclass(frozen=True)
class ConfidenceInterval:
    """Mean over units (tasks, patients) with a bootstrap confidence interval.

    Attributes
    ----------
    mean : float
        Mean of the finite per-unit values (``nan`` when there are none).
    low, high : float
        Percentile bootstrap bounds; ``nan`` when fewer than 2 finite units.
    n_tasks : int
        Number of finite per-unit values used.
    level : float
        Confidence level, e.g. 0.95.
    """

    mean: float
    low: float
    high: float
    n_tasks: int
    level: float


def _identity_words(identity: tuple[object, ...]) -> list[int]:
    # A stable digest of the cell's identity: Python's hash() of a str changes between
    # processes, and numpy scalars must read like the plain numbers they hold (k = 10).
    parts = [str(x.item() if isinstance(x, np.generic) else x) for x in identity]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def cell_rng(seed: int, *identity: object) -> np.random.Generator:
    """The random generator of one cell: a function of ``seed`` and the cell's identity only.

    Parameters
    ----------
    seed : int
        The run's bootstrap seed (>= 0).
    *identity : object
        What the cell is, e.g. ``"summary", dataset, method, k, metric``; values are
        compared by their text, so ``10`` and ``numpy.int64(10)`` name the same cell.

    Returns
    -------
    numpy.random.Generator
        With no identity, the same stream as ``numpy.random.default_rng(seed)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MetamedValueError(
            f"seed must be a non-negative integer; received {seed!r}. Use e.g. seed=0."
        )
    entropy = [int(seed), *_identity_words(identity)] if identity else int(seed)
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _check_settings(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise MetamedValueError(
            f"n_boot must be a positive integer; received {n_boot!r}. Use e.g. n_boot=2000."
        )
    if not 0.0 < float(level) < 1.0:
        raise MetamedValueError(
            f"level must be a confidence level in (0, 1); received {level!r}. Use e.g. 0.95."
        )


def bootstrap_ci(
    values: ArrayLike | Mapping[object, float],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    cell: tuple[object, ...] = (),
) -> ConfidenceInterval:
    """Percentile bootstrap CI of the mean, resampling units with replacement.

    Parameters
    ----------
    values : array-like or mapping of unit to float
        One value per unit (a held-out task averaged over its draws, a patient averaged
        over its days).  NaN values (undefined for that unit) are dropped first.
    n_boot : int, default 2000
        Bootstrap resamples.
    level : float, default 0.95
        Confidence level.
    seed : int, default 0
        The run's seed; with ``cell`` it fixes the resamples (see :func:`cell_rng`).
    cell : tuple, default ()
        The interval's identity, so that it does not depend on which other intervals
        are computed.

    Returns
    -------
    ConfidenceInterval
        ``mean, low, high, n_tasks, level``.  With fewer than 2 finite units the bounds
        are ``nan`` (one unit carries no information about the spread between units).

    Notes
    -----
    With few units (say < 10) the percentile bootstrap is coarse and tends to
    under-cover; read ``n_tasks`` alongside the interval.
    """
    _check_settings(n_boot, level)
    raw = list(values.values()) if isinstance(values, Mapping) else values
    arr = np.asarray(raw, dtype=float).reshape(-1)
    arr = arr[np.isfinite(arr)]
    rng = cell_rng(seed, *cell)
    if len(arr) == 0:
        return ConfidenceInterval(float("nan"), float("nan"), float("nan"), 0, float(level))
    if len(arr) < 2:
        return ConfidenceInterval(float(arr.mean()), float("nan"), float("nan"), 1, float(level))
    idx = rng.integers(0, len(arr), size=(n_boot, len(arr)))
    boot_means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot_means, [alpha, 1.0 - alpha])
    return ConfidenceInterval(float(arr.mean()), float(low), float(high), len(arr), float(level))
