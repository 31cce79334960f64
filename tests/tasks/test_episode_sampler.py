"""The law of meta-training episodes (``EpisodeSampler``), checked statistically.

Whatever way a meta-batch is drawn, each episode must be: a task chosen uniformly; a
support set uniform among the task's K-row samples that hold both classes (so the
number of positives is hypergeometric, conditioned on both classes, and rows of a class
are exchangeable); a query set uniform among the rest, disjoint from the support.  Rows
are recovered from the batch through a feature that holds each row's index.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare, hypergeom

from metamed.tasks import EpisodeSampler, Task

K, N_QUERY = 5, 10


def indexed_task(name: str, n: int, n_pos: int, offset: int) -> Task:
    """A task whose first feature is a row id unique across tasks (offset + row)."""
    y = np.zeros(n, dtype=np.float32)
    y[np.random.default_rng(n).choice(n, n_pos, replace=False)] = 1.0
    X = np.column_stack([offset + np.arange(n), np.ones(n)]).astype(np.float32)
    return Task(name, X, y)


TASKS = [
    indexed_task("a", 40, 12, 0),
    indexed_task("b", 25, 5, 1000),
    indexed_task("c", 12, 6, 2000),
]


def draw(n_query: int | None, batches: int, size: int = 64, seed: int = 0):
    sampler = EpisodeSampler(TASKS, K, n_query, np.random.default_rng(seed))
    return [sampler.sample(size) for _ in range(batches)]


@pytest.fixture(scope="module")
def episodes() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(support ids, query ids, support labels) of 12,800 episodes."""
    out = []
    for batch in draw(N_QUERY, 200):
        sx, qx = batch.support_x[..., 0].numpy(), batch.query_x[..., 0].numpy()
        sm, qm = batch.support_mask.numpy() > 0, batch.query_mask.numpy() > 0
        for i in range(batch.size):
            out.append(
                (sx[i][sm[i]].astype(int), qx[i][qm[i]].astype(int), batch.support_y[i].numpy())
            )
    return out


def task_of(row_id: int) -> Task:
    return TASKS[row_id // 1000]


def test_every_episode_is_a_valid_disjoint_pair_from_one_task(episodes) -> None:
    for support, query, y in episodes:
        task = task_of(support[0])
        rows = np.concatenate([support, query]) - 1000 * (support[0] // 1000)
        assert len(support) == K and len(query) == min(N_QUERY, len(task) - K)
        assert len(set(rows)) == len(rows)  # no row twice, support and query disjoint
        assert rows.min() >= 0 and rows.max() < len(task)  # all from the same task
        assert set(y) == {0.0, 1.0}  # conditioned: both classes
        assert np.array_equal(y, task.y[rows[:K]])


def test_tasks_are_chosen_uniformly(episodes) -> None:
    counts = np.bincount([support[0] // 1000 for support, _, _ in episodes], minlength=3)
    assert chisquare(counts).pvalue > 1e-3


def test_support_positives_are_hypergeometric_given_both_classes(episodes) -> None:
    task = TASKS[0]
    counts = [int(y.sum()) for support, _, y in episodes if support[0] < 1000]
    law = hypergeom(len(task), int(task.y.sum()), K)
    values = np.arange(1, K)  # both classes: 1 to K - 1 positives
    expected = law.pmf(values) / law.pmf(values).sum() * len(counts)
    observed = np.bincount(counts, minlength=K)[1:K]
    assert chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("part", [0, 1], ids=["support", "query"])
def test_rows_of_a_class_are_equally_likely(episodes, part) -> None:
    """Within a class every row has the same inclusion frequency (support and query)."""
    task = TASKS[0]
    counts = np.bincount(
        np.concatenate([e[part] for e in episodes if e[0][0] < 1000]), minlength=len(task)
    )
    for label in (0.0, 1.0):
        assert chisquare(counts[task.y == label]).pvalue > 1e-3


def test_without_n_query_the_query_is_the_rest_of_the_task_and_padding_is_zero() -> None:
    for batch in draw(None, 5, size=16):
        qm = batch.query_mask.numpy() > 0
        for i in range(batch.size):
            task = task_of(int(batch.support_x[i, 0, 0]))
            assert qm[i].sum() == len(task) - K
        assert not batch.query_x.numpy()[~qm].any() and not batch.query_y.numpy()[~qm].any()


def test_the_same_seed_gives_the_same_batches() -> None:
    one, two = draw(N_QUERY, 3, seed=7), draw(N_QUERY, 3, seed=7)
    for a, b in zip(one, two, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a._tensors(), b._tensors(), strict=True))
