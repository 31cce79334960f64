"""The few-shot imaging protocol: K labelled images per class of an unseen set or device.

Two settings on the image tasks of :func:`metamed.tasks.image_tasks` (MedMNIST's official
splits kept, see ``docs/design.md``):

* **leave one set out** (``held-out-set``): meta- or pre-train on every other 2-D set,
  adapt to the held-out set from K images per class of its training split, score its
  whole official test split (BreastMNIST from chest X-rays, and the reverse);
* **acquisition shift** (``held-out-corruption``): the same images under seeded
  corruptions as pseudo-sites (:mod:`metamed.data.images`); meta-train on some
  corruptions of every set, adapt to a corruption never seen in training from K images
  per class, score that pseudo-site's test split.

Training reads only the training tasks' ``train`` split (their ``val`` split serves for
early stopping); a held-out task's training-split images serve only as the pool its
support images are drawn from, its test-split images only as the query, so no scored
image is ever trained on or in a support set.  An episode is drawn by
:func:`~metamed.tasks.sample_k_per_class` from a generator seeded by (seed, task, K,
draw) (:func:`~metamed.evaluation.protocol.episode_rng`), so every method sees the same
support images.  Scores: AUROC and accuracy at P = 0.5 on the test split.

The summary averages each (setting, held-out task, method, K) over its draws with a 95 %
bootstrap interval over draws (the spread from which K images were labelled; the
held-out tasks are too few to be the unit), and pairs each meta-learner with the best
baseline of that cell (highest mean AUROC) draw by draw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.metrics import auroc
from metamed.evaluation.protocol import MIN_VAL_ROWS, episode_rng
from metamed.learners.base import MetaLearner
from metamed.tasks import ImageTasks, Task, sample_k_per_class

__all__ = [
    "ImageSetting",
    "ImagingConfig",
    "ImagingResult",
    "held_out_corruption",
    "held_out_sets",
    "paired_with_best_baseline",
    "run_imaging_protocol",
    "summarise_imaging",
]

Progress = Callable[[str], None]

#: The metrics of an imaging episode, in report order.
IMAGING_METRICS = ("auroc", "accuracy")


@dataclass(frozen=True)
class ImageSetting:
    """One train / held-out division of the image tasks.

    Attributes
    ----------
    name : str
        How results name it (``"held-out-set: breastmnist"``).
    train : tuple of str
        Tasks whose ``train`` split meta- or pre-trains (``val`` split: early stopping).
    test : tuple of str
        Held-out tasks: support from their ``train`` split, scored on their ``test`` split.
    """

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise MetamedValueError(
                f"Setting '{self.name}': tasks {sorted(overlap)} are both trained on and held out."
            )
        if not self.train or not self.test:
            raise MetamedValueError(f"Setting '{self.name}' needs training and held-out tasks.")


def held_out_sets(tasks: ImageTasks, sets: Sequence[str]) -> list[ImageSetting]:
    """Leave one set out: for each of ``sets``, train on the others (as published)."""
    tasks.check_names(list(sets), "held-out sets")
    if len(sets) < 2:
        raise MetamedValueError("Leaving one set out needs at least two image sets.")
    return [
        ImageSetting(f"held-out-set: {s}", tuple(o for o in sets if o != s), (s,)) for s in sets
    ]


def held_out_corruption(
    tasks: ImageTasks, sets: Sequence[str], train: Sequence[str], test: Sequence[str]
) -> ImageSetting:
    """Train on corruptions ``train`` of every set, hold out corruptions ``test``."""

    def name(s: str, c: str) -> str:
        return s if c == "none" else f"{s}/{c}"

    train_tasks = tuple(name(s, c) for s in sets for c in train)
    test_tasks = tuple(name(s, c) for s in sets for c in test)
    tasks.check_names([*train_tasks, *test_tasks], "corruption setting")
    label = f"held-out-corruption: {', '.join(test)} (trained on {', '.join(train)})"
    return ImageSetting(label, train_tasks, test_tasks)


@dataclass(frozen=True)
class ImagingConfig:
    """Support sizes (K per class), draws per (held-out task, K) and the seed."""

    shots: tuple[int, ...] = (1, 5, 10, 20)
    draws: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.shots or any(int(k) < 1 for k in self.shots):
            raise MetamedValueError(f"shots must be positive integers, got {self.shots}.")
        if self.draws < 1:
            raise MetamedValueError(f"draws must be >= 1, got {self.draws}.")


@dataclass
class ImagingResult:
    """``results``: one row per (setting, method, task, k, draw, metric); seconds per
    (setting, method) to meta-train and to adapt and score."""

    results: pd.DataFrame
    fit_seconds: dict[str, float] = field(default_factory=dict)
    adapt_seconds: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def _check_pools(tasks: ImageTasks, setting: ImageSetting, shots: Sequence[int]) -> None:
    """Every held-out task's training split holds max(K) images of each class."""
    k = max(shots)
    for name in setting.test:
        pool = tasks.train[name]
        n1 = int(pool.y.sum())
        if min(n1, len(pool) - n1) < k + 1:
            raise MetamedValueError(
                f"{setting.name}: the training split of '{name}' has {n1} positive and "
                f"{len(pool) - n1} negative images; K={k} per class needs {k + 1} of each. "
                "Use smaller shots."
            )
        if name not in tasks.test:
            raise MetamedValueError(f"{setting.name}: '{name}' has no test split to score.")


def run_imaging_protocol(
    tasks: ImageTasks,
    settings: Sequence[ImageSetting],
    methods: dict[str, MetaLearner],
    config: ImagingConfig,
    progress: Progress | None = None,
) -> ImagingResult:
    """Meta-train each method per setting and score it on the held-out tasks.

    Parameters
    ----------
    tasks : ImageTasks
        From :func:`metamed.tasks.image_tasks`.
    settings : sequence of ImageSetting
        From :func:`held_out_sets` and :func:`held_out_corruption`.
    methods : dict of str to MetaLearner
        Unfitted learners keyed by method id; each is cloned per setting.
    """
    if not methods:
        raise MetamedValueError("No methods to evaluate; pass at least one method name.")
    for setting in settings:  # every check before any training
        tasks.check_names([*setting.train, *setting.test], setting.name)
        _check_pools(tasks, setting, config.shots)
    rows: list[dict] = []
    fit_seconds: dict[str, float] = {}
    adapt_seconds: dict[str, float] = {}
    for setting in settings:
        train = [tasks.train[n] for n in setting.train]
        # A val split too small for an episode would only stop a learner with an error.
        val = [
            tasks.val[n]
            for n in setting.train
            if n in tasks.val and len(tasks.val[n]) >= MIN_VAL_ROWS
        ] or None
        for method, template in methods.items():
            learner = template.clone()
            start = time.perf_counter()
            learner.meta_fit(train, val_tasks=val)
            key = f"{setting.name} | {method}"
            fit_seconds[key] = time.perf_counter() - start
            if progress is not None:
                progress(f"{setting.name}: trained {method} in {fit_seconds[key]:.1f} s")
            start = time.perf_counter()
            for name in setting.test:
                rows += _score_task(learner, method, setting.name, tasks, name, config)
            adapt_seconds[key] = time.perf_counter() - start
    run = {
        **asdict(config),
        "settings": [asdict(s) for s in settings],
        "image_shape": list(tasks.image_shape),
    }
    return ImagingResult(pd.DataFrame(rows), fit_seconds, adapt_seconds, run)


def _score_task(
    learner: MetaLearner,
    method: str,
    setting: str,
    tasks: ImageTasks,
    name: str,
    config: ImagingConfig,
) -> list[dict]:
    pool, query = tasks.train[name], tasks.test[name]
    rows = []
    for k in config.shots:
        for draw in range(config.draws):
            # The pool's own "query" part is unused: the scored images are the test split.
            support_idx, _ = sample_k_per_class(pool, k, episode_rng(config.seed, name, k, draw))
            model = learner.adapt(pool.subset(support_idx))
            p = model.predict_proba(query.X)  # type: ignore[attr-defined]
            for metric, value in _scores(query, p).items():
                rows.append(
                    {
                        "setting": setting,
                        "method": method,
                        "task": name,
                        "k": k,
                        "draw": draw,
                        "metric": metric,
                        "value": value,
                    }
                )
    return rows


def _scores(query: Task, p: np.ndarray) -> dict[str, float]:
    return {
        "auroc": float(auroc(query.y, p)),
        "accuracy": float(np.mean((p >= 0.5) == (query.y == 1))),
    }


_CELL = ["setting", "task", "method", "k", "metric"]


def summarise_imaging(results: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean over draws with a 95 % bootstrap interval, per (setting, task, method, K, metric).

    Returns
    -------
    DataFrame
        ``setting, task, method, k, metric, mean, ci_low, ci_high, n_draws``.
    """
    out = []
    for key, cell in results.groupby(_CELL, sort=False):
        ci = bootstrap_ci(cell["value"].to_numpy(), seed=seed, cell=("imaging", *key))
        out.append(
            {
                **dict(zip(_CELL, key, strict=True)),
                "mean": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n_draws": ci.n_tasks,
            }
        )
    return pd.DataFrame(out)


def paired_with_best_baseline(
    results: pd.DataFrame,
    baselines: Sequence[str],
    seed: int = 0,
    metric: str = "auroc",
) -> pd.DataFrame:
    """Each non-baseline method minus the best baseline of its cell, draw by draw.

    The best baseline of a (setting, task, K) cell is the one with the highest mean
    ``metric`` there; the difference is taken on the same episodes (same support images),
    and its 95 % interval is a bootstrap over draws.

    Returns
    -------
    DataFrame
        ``setting, task, k, method, baseline, metric, difference, ci_low, ci_high, n_draws``
        (empty when there is no baseline or no other method).
    """
    scored = results[results["metric"] == metric]
    out = []
    for (setting, task, k), cell in scored.groupby(["setting", "task", "k"], sort=False):
        wide = cell.pivot_table(index="draw", columns="method", values="value")
        present = [b for b in baselines if b in wide.columns]
        others = [m for m in wide.columns if m not in set(baselines)]
        if not present or not others:
            continue
        best = max(present, key=lambda b: float(wide[b].mean()))
        for method in others:
            diff = (wide[method] - wide[best]).to_numpy()
            ci = bootstrap_ci(
                diff, seed=seed, cell=("imaging-paired", setting, task, k, method, best, metric)
            )
            out.append(
                {
                    "setting": setting,
                    "task": task,
                    "k": k,
                    "method": method,
                    "baseline": best,
                    "metric": metric,
                    "difference": ci.mean,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "n_draws": ci.n_tasks,
                }
            )
    return pd.DataFrame(out)
