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

    def to(self, device: torch.device) -> EpisodeBatch:
        """The batch on ``device`` (itself when it is there already)."""
        if self.support_x.device == device:
            return self
        return EpisodeBatch(*(t.to(device) for t in self._tensors()))

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
    """Draws meta-batches of episodes from training tasks, one vectorised draw per batch.

    Tasks too small for ``k_support + 1`` rows (or with one class) are left out with
    the reason recorded in ``skipped``; if none is usable a clear error is raised.

    The law is that of :func:`make_episode` with the conditioned sampler, episode by
    episode: a task drawn uniformly, a support set uniform among the task's K-row
    samples that hold every support group (both classes), a query set uniform among
    the remaining rows (``n_query`` of them, or all).  It is drawn differently, for
    the whole meta-batch at once: every episode gets one uniform random key per row of
    its task (padding rows get +inf), and its rows in increasing key order are a
    uniform random permutation of the task; the first K are the support, the next
    ``n_query`` the query, so support and query are disjoint by construction.  Episodes
    whose support misses a group are redrawn together (rejection, as the per-episode
    sampler does), and the rows are gathered task by task, not episode by episode.
    The draws therefore differ from the per-episode sampler's for the same seed; the
    law does not (``tests/tasks/test_episode_sampler.py`` checks it).
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
        self._sizes = np.array([len(t) for t in self.tasks])
        # each row's support group (groups partition a task's rows), padded with -1
        groups = [t.outcome_type.support_groups(t.y) for t in self.tasks]
        self._n_groups = np.array([len(g) for g in groups])
        self._group_of = np.full((len(self.tasks), int(self._sizes.max())), -1, dtype=np.int64)
        for i, task_groups in enumerate(groups):
            for g, rows in enumerate(task_groups):
                self._group_of[i, rows] = g

    def sample(self, meta_batch_size: int) -> EpisodeBatch:
        task_of = self.rng.integers(len(self.tasks), size=meta_batch_size)
        n_max = int(self._sizes[task_of].max())
        width = n_max if self.n_query is None else min(n_max, self.k_support + self.n_query)
        order = self._orders(task_of, n_max, width)
        bad = np.flatnonzero(~self._holds_every_group(task_of, order))
        for _ in range(MAX_REDRAWS):
            if not len(bad):
                break
            order[bad] = self._orders(task_of[bad], n_max, width)
            bad = bad[~self._holds_every_group(task_of[bad], order[bad])]
        for b in bad:  # a group so rare that random samples almost never hold it
            task = self.tasks[task_of[b]]
            support, query = sample_support_query(task, self.k_support, self.rng, self.n_query)
            order[b, : self.k_support] = support
            order[b, self.k_support : self.k_support + len(query)] = query
        return self._gather(task_of, order)

    def _orders(self, task_of: np.ndarray, n_max: int, width: int) -> np.ndarray:
        """[B, width]: the first ``width`` rows of a uniform random order of each episode's
        task's rows (``n_max`` keys per episode; padding rows come last)."""
        sizes = self._sizes[task_of]
        keys = self.rng.random((len(task_of), n_max))
        keys[np.arange(n_max) >= sizes[:, None]] = np.inf
        if width < n_max:  # only the first `width` rows matter: partition, then sort them
            first = np.argpartition(keys, width - 1, axis=1)[:, :width]
            return np.take_along_axis(
                first, np.argsort(np.take_along_axis(keys, first, 1), axis=1), 1
            )
        return np.argsort(keys, axis=1)

    def _holds_every_group(self, task_of: np.ndarray, order: np.ndarray) -> np.ndarray:
        support_groups = self._group_of[task_of[:, None], order[:, : self.k_support]]
        present = np.zeros((len(task_of), int(self._n_groups.max())), dtype=bool)
        present[np.arange(len(task_of))[:, None], support_groups] = True
        return present.sum(1) == self._n_groups[task_of]

    def _gather(self, task_of: np.ndarray, order: np.ndarray) -> EpisodeBatch:
        """The padded batch; rows are gathered task by task (not episode by episode)."""
        k, width = self.k_support, order.shape[1]
        sizes = self._sizes[task_of]
        query = order[:, k:width]
        query_mask = np.arange(k, width)[None, :] < sizes[:, None]
        query = np.where(query_mask, query, 0)  # padding rows read row 0, then are zeroed
        b, d = len(task_of), self.tasks[0].X.shape[1]
        sx = np.empty((b, k, d), dtype=np.float32)
        sy = np.empty((b, k), dtype=np.float32)
        qx = np.empty((b, width - k, d), dtype=np.float32)
        qy = np.empty((b, width - k), dtype=np.float32)
        for t in np.unique(task_of):
            at = np.flatnonzero(task_of == t)
            task = self.tasks[t]
            sx[at], sy[at] = task.X[order[at, :k]], task.y[order[at, :k]]
            qx[at], qy[at] = task.X[query[at]], task.y[query[at]]
        qx[~query_mask] = 0.0
        qy[~query_mask] = 0.0
        return EpisodeBatch(
            torch.from_numpy(sx),
            torch.from_numpy(sy),
            torch.ones((b, k)),
            torch.from_numpy(qx),
            torch.from_numpy(qy),
            torch.from_numpy(query_mask.astype(np.float32)),
        )
