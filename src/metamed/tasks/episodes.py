"""K-shot episodes and fixed-shape, masked episode batches.

An episode is a support set of K labelled rows and a disjoint query set from the
same task.  Two support samplers (:data:`SUPPORT_SAMPLERS`) say how a site's K labelled
patients are drawn:

- ``"conditioned"`` (the default): a random sample holding a row of every support group
  the task's outcome names (:meth:`~metamed.outcomes.Outcome.support_groups`): both
  classes of a binary outcome, as a site collecting patients until it has seen both
  outcomes would;
- ``"unconditioned"``: K random patients of the site, as a site that labels the next K
  patients has them, possibly all of one class.  Conditioning inflates the support set's
  positive rate at low prevalence (at 7 % prevalence and K = 5, a support set holding a
  positive is at least 20 % positive, about three times the site's rate); the
  unconditioned sample matches the site's rate in expectation.  Every learner adapts to
  a one-class support set (falling back to its prior or to recalibration in the large).

Episodes of different sizes are padded into one tensor batch with masks so that a whole
meta-batch is processed in one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metamed.errors import MetamedValueError, unknown_name
from metamed.tasks.task import Task

__all__ = [
    "Episode",
    "EpisodeBatch",
    "sample_support_query",
    "sample_k_per_class",
    "max_support_size",
    "make_episode",
    "stack_episodes",
    "EpisodeSampler",
    "SUPPORT_SAMPLERS",
    "check_sampler",
    "complement",
    "min_support_size",
]

#: How support sets are drawn (see the module docstring): conditioned on holding every
#: support group of the outcome (both classes), or K random patients of the site.
SUPPORT_SAMPLERS: tuple[str, ...] = ("conditioned", "unconditioned")


def check_sampler(sampler: str) -> str:
    """``sampler`` when it names a support sampler, else an error with "did you mean"."""
    if sampler not in SUPPORT_SAMPLERS:
        raise unknown_name("support sampler", str(sampler), SUPPORT_SAMPLERS)
    return sampler


def min_support_size(task: Task, sampler: str = "conditioned") -> int:
    """Smallest K the sampler can draw: a row of each support group when conditioned, one
    patient when not."""
    return task.outcome_type.min_support if check_sampler(sampler) == "conditioned" else 1


def max_support_size(task: Task) -> int:
    """Largest K for which a valid support set (both classes of a binary outcome) and a
    non-empty query exist; 0 when none does."""
    if task.outcome_type.missing_class(task.y) is not None:
        return 0
    return len(task) - 1


def complement(n: int, rows: np.ndarray) -> np.ndarray:
    """The sorted row indices of ``range(n)`` not in ``rows``.

    What ``np.setdiff1d(np.arange(n), rows)`` returns, from a mask instead of a sort:
    that call was half the time of drawing episodes (7 s over 111,000 episodes of the
    README's benchmark).
    """
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    return np.flatnonzero(keep)


def sample_support_query(
    task: Task,
    k_support: int,
    rng: np.random.Generator,
    n_query: int | None = None,
    sampler: str = "conditioned",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw disjoint support and query row indices from ``task``.

    The support set is a uniform random sample of ``k_support`` rows.  With the
    ``"conditioned"`` sampler a sample missing one of the outcome's support groups (a
    class of a binary outcome) is redrawn, so the support holds both classes, as a site
    collecting labelled patients until it has seen both outcomes would; with
    ``"unconditioned"`` the first sample is kept, whatever classes it holds (the same
    rows as the conditioned sampler whenever that one's first sample holds both).
    Neither is stratified by the task's prevalence: that
    prevalence is computed from all labels, query rows included, and matching it in
    every support set hands the adapting model the held-out labels' base rate for free
    (on UCI Heart it flattered the Brier score of adapted models by up to 0.02).  The
    query set is a random subset of the remaining rows (all of them when ``n_query`` is
    None).
    """
    n = len(task)
    outcome = task.outcome_type
    conditioned = check_sampler(sampler) == "conditioned"
    absent = outcome.missing_class(task.y)
    if absent is not None and conditioned:
        raise MetamedValueError(
            f"Task '{task.name}' has no {absent} outcomes ({n} rows); a support set needs "
            f"{outcome.support_needs}. Drop this task or merge it with another."
        )
    if k_support < min_support_size(task, sampler):
        need = outcome.support_needs if conditioned else "at least one patient"
        raise MetamedValueError(
            f"K={k_support} is too small for a {outcome} task: the support set needs "
            f"{need} (K >= {min_support_size(task, sampler)})."
        )
    if k_support > n - 1:
        raise MetamedValueError(
            f"K={k_support} is larger than task '{task.name}' allows: it has {n} patients and "
            f"at least one must be left to score. Use K <= {n - 1}."
        )
    if conditioned:
        support = _draw_from_every_group(outcome.support_groups(task.y), n, k_support, rng)
    else:
        support = rng.choice(n, k_support, replace=False)
    support = rng.permutation(support)
    query = rng.permutation(complement(n, support))
    if n_query is not None:
        query = query[:n_query]
    return support, query


def sample_k_per_class(
    task: Task, k_per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a support set of exactly ``k_per_class`` rows of each class; the query is the rest.

    The few-shot molecular protocol (Meta-MGNN, PAR, FS-Mol's balanced variant): K
    actives and K inactives, whatever the assay's hit rate, and every other labelled
    molecule of the assay is scored.  Unlike :func:`sample_support_query` this fixes
    the support's class balance by design; the query keeps the assay's own balance.

    Raises
    ------
    MetamedValueError
        The outcome has no classes (numeric), or a class has fewer than
        ``k_per_class + 1`` rows (one must be left to score).
    """
    classes = task.outcome_type.classes
    if classes is None:
        raise MetamedValueError(
            f"Task '{task.name}': K per class needs a class outcome, not {task.outcome_type}."
        )
    if k_per_class < 1:
        raise MetamedValueError(f"K per class must be >= 1, got {k_per_class}.")
    support = []
    for label in classes:
        rows = np.flatnonzero(task.y == label)
        if len(rows) < k_per_class + 1:
            raise MetamedValueError(
                f"Task '{task.name}' has {len(rows)} rows of class {label:g}; K={k_per_class} "
                f"per class needs at least {k_per_class + 1} (one left to score). Use a "
                "smaller K or leave this task out."
            )
        support.append(rng.choice(rows, k_per_class, replace=False))
    chosen = rng.permutation(np.concatenate(support))
    query = rng.permutation(complement(len(task), chosen))
    return chosen, query


#: Redraws of a one-class support set before falling back (see below).
MAX_REDRAWS = 1000


def _draw_from_every_group(
    groups: list[np.ndarray], n: int, k: int, rng: np.random.Generator
) -> np.ndarray:
    """A uniform sample of ``k`` of ``n`` rows conditioned on touching every group."""
    members = []
    for group in groups:
        member = np.zeros(n, dtype=bool)
        member[group] = True
        members.append(member)
    for _ in range(MAX_REDRAWS):
        support = rng.choice(n, k, replace=False)
        if all(member[support].any() for member in members):
            return support
    # A class so rare that random samples of this size almost never hold it: take one
    # row of each group and the rest at random.
    first = np.array([rng.choice(group) for group in groups])
    rest = rng.choice(complement(n, first), k - len(first), replace=False)
    return np.concatenate([first, rest])


@dataclass(frozen=True, eq=False)
class Episode:
    """One support/query pair drawn from one task (row indices refer to that task)."""

    task: Task
    support_idx: np.ndarray
    query_idx: np.ndarray

    @property
    def support(self) -> Task:
        return self.task.subset(self.support_idx)

    @property
    def query(self) -> Task:
        return self.task.subset(self.query_idx)


def make_episode(
    task: Task,
    k_support: int,
    rng: np.random.Generator,
    n_query: int | None = None,
    sampler: str = "conditioned",
) -> Episode:
    support, query = sample_support_query(task, k_support, rng, n_query, sampler)
    return Episode(task, support, query)


@dataclass(frozen=True)
class EpisodeBatch:
    """A meta-batch of episodes padded to fixed shapes.

    Shapes: ``support_x`` [B, S, D], ``support_y`` [B, S], ``support_mask`` [B, S]
    (1.0 for real rows, 0.0 for padding); the same for the query set with Q rows.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    support_mask: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    query_mask: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.support_x.shape[0])

    def chunk(self, start: int, stop: int) -> EpisodeBatch:
        return EpisodeBatch(*(t[start:stop] for t in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (
            self.support_x,
            self.support_y,
            self.support_mask,
            self.query_x,
            self.query_y,
            self.query_mask,
        )


def _pad(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_max = max(len(y) for _, y in parts)
    d = parts[0][0].shape[1]
    x = np.zeros((len(parts), n_max, d), dtype=np.float32)
    y = np.zeros((len(parts), n_max), dtype=np.float32)
    m = np.zeros((len(parts), n_max), dtype=np.float32)
    for i, (xi, yi) in enumerate(parts):
        x[i, : len(yi)] = xi
        y[i, : len(yi)] = yi
        m[i, : len(yi)] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)


def stack_episodes(episodes: list[Episode]) -> EpisodeBatch:
    """Pad and stack episodes into one :class:`EpisodeBatch`."""
    if not episodes:
        raise MetamedValueError("Cannot stack an empty list of episodes.")
    sx, sy, sm = _pad([(e.task.X[e.support_idx], e.task.y[e.support_idx]) for e in episodes])
    qx, qy, qm = _pad([(e.task.X[e.query_idx], e.task.y[e.query_idx]) for e in episodes])
    return EpisodeBatch(sx, sy, sm, qx, qy, qm)


class EpisodeSampler:
    """Draws meta-batches of episodes from training tasks.

    Tasks too small for ``k_support + 1`` rows (or with one class) are left out with
    the reason recorded in ``skipped``; if none is usable a clear error is raised.
    """

    def __init__(
        self,
        tasks: list[Task],
        k_support: int,
        n_query: int | None,
        rng: np.random.Generator,
    ) -> None:
        self.k_support = k_support
        self.n_query = n_query
        self.rng = rng
        self.skipped: dict[str, str] = {}
        self.tasks: list[Task] = []
        for task in tasks:
            if max_support_size(task) >= max(k_support, 1) + (1 if n_query is None else 0):
                self.tasks.append(task)
            else:
                self.skipped[task.name] = f"{len(task)} rows, prevalence {task.prevalence:.2f}"
        if not self.tasks:
            raise MetamedValueError(
                f"No training task can provide a K={k_support} support set plus a query set "
                f"(tasks: {', '.join(t.name for t in tasks)}). Lower K or add tasks."
            )

    def sample(self, meta_batch_size: int) -> EpisodeBatch:
        idx = self.rng.integers(len(self.tasks), size=meta_batch_size)
        episodes = [
            make_episode(self.tasks[i], self.k_support, self.rng, self.n_query) for i in idx
        ]
        return stack_episodes(episodes)
