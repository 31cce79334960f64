"""Support sets: random samples holding both classes, never shaped by the query's labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hypergeom

from metamed.errors import MetamedValueError, UnknownNameError
from metamed.tasks import Task, sample_support_query


def binary_task(n: int, n_pos: int, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    y[rng.choice(n, n_pos, replace=False)] = 1
    return Task("t", rng.normal(size=(n, 3)), y)


def test_support_composition_is_random_not_matched_to_task_prevalence():
    """Matching every support set to the task's prevalence would leak the query's labels.

    The number of positives must follow the hypergeometric law of a random sample
    (conditioned on both classes), not sit at round(K * prevalence) in every draw.
    """
    task = binary_task(100, 30)
    k = 10
    counts = np.array(
        [
            int(task.y[sample_support_query(task, k, np.random.default_rng(i))[0]].sum())
            for i in range(2000)
        ]
    )
    law = hypergeom(100, 30, k)
    support = np.arange(1, k)
    p = law.pmf(support) / law.pmf(support).sum()  # conditioned on both classes
    assert counts.min() >= 1 and counts.max() <= k - 1
    assert abs(counts.mean() - (support * p).sum()) < 0.1
    assert abs(counts.std() - np.sqrt((support**2 * p).sum() - (support * p).sum() ** 2)) < 0.1
    assert np.mean(counts == 3) < 0.4  # round(10 * 0.3) = 3 in only ~27% of random samples


def test_support_and_query_partition_the_task():
    task = binary_task(50, 20)
    s, q = sample_support_query(task, 8, np.random.default_rng(0))
    assert len(s) == 8 and not set(s) & set(q) and len(s) + len(q) == 50


def test_rare_class_still_gives_both_classes():
    task = binary_task(300, 1)  # random samples of 3 almost never hold the one positive
    for seed in range(20):
        s, _ = sample_support_query(task, 3, np.random.default_rng(seed))
        assert set(task.y[s]) == {0.0, 1.0}


def test_one_class_task_and_k_too_large_raise():
    with pytest.raises(MetamedValueError, match="no positive outcomes"):
        sample_support_query(binary_task(20, 0), 4, np.random.default_rng(0))
    with pytest.raises(MetamedValueError, match="K=20 is larger"):
        sample_support_query(binary_task(20, 5), 20, np.random.default_rng(0))


def test_unconditioned_support_matches_the_site_prevalence_in_expectation():
    """At 7 % prevalence and K = 5 the conditioned sampler's supports are >= 20 % positive;
    K random patients of the site (possibly one class) are positive at the site's rate."""
    task = binary_task(400, 28)  # 7 % prevalence
    k, n = 5, 4000
    rates = {
        sampler: np.array(
            [
                task.y[
                    sample_support_query(task, k, np.random.default_rng(i), sampler=sampler)[0]
                ].mean()
                for i in range(n)
            ]
        )
        for sampler in ("conditioned", "unconditioned")
    }
    law = hypergeom(400, 28, k)
    se = np.sqrt(law.var()) / k / np.sqrt(n)
    assert abs(rates["unconditioned"].mean() - 0.07) < 4 * se
    assert np.mean(rates["unconditioned"] == 0) == pytest.approx(law.pmf(0), abs=0.03)
    assert rates["conditioned"].min() >= 0.2 and rates["conditioned"].mean() > 0.2


def test_unconditioned_sampler_draws_from_one_class_tasks_and_needs_k_of_one():
    task = binary_task(20, 0)
    s, q = sample_support_query(task, 1, np.random.default_rng(0), sampler="unconditioned")
    assert len(s) == 1 and len(q) == 19
    with pytest.raises(MetamedValueError, match="K=1 is too small"):
        sample_support_query(binary_task(20, 5), 1, np.random.default_rng(0))
    with pytest.raises(UnknownNameError, match="Did you mean 'unconditioned'"):
        sample_support_query(task, 2, np.random.default_rng(0), sampler="unconditional")

def test_k_per_class_support_is_balanced_and_the_query_is_everything_else() -> None:
    from metamed.tasks import sample_k_per_class

    y = np.array([1] * 6 + [0] * 30, dtype=np.float32)
    task = Task("assay", np.arange(36, dtype=np.float32).reshape(-1, 1), y)
    seen = set()
    for seed in range(20):
        support, query = sample_k_per_class(task, 5, np.random.default_rng(seed))
        assert sorted(y[support].tolist()) == [0.0] * 5 + [1.0] * 5
        assert sorted([*support, *query]) == list(range(36))
        seen.add(tuple(sorted(support)))
    assert len(seen) == 20  # random draws, not a fixed set
    with pytest.raises(
        MetamedValueError, match="6 rows of class 1; K=6 per class needs at least 7"
    ):
        sample_k_per_class(task, 6, np.random.default_rng(0))


def test_complement_is_setdiff1d_of_the_task_rows() -> None:
    """The episodes' query rows come from ``complement``; it must give exactly the rows
    (and order) ``np.setdiff1d`` gave, or every seeded draw, and the README's numbers, move."""
    from metamed.tasks.episodes import complement

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50, 303):
        for size in {0, 1, n // 2, n - 1}:
            rows = rng.choice(n, size, replace=False)
            out = complement(n, rows)
            expected = np.setdiff1d(np.arange(n), rows)
            assert out.dtype == expected.dtype and np.array_equal(out, expected)
    assert np.array_equal(complement(5, np.array([3, 3, 1])), [0, 2, 4])  # repeats too
