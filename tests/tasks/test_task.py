"""`Task`: labels, values and argument types are checked where a task is built."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.tasks import Task


def test_binary_task_with_a_label_other_than_0_1_is_refused() -> None:
    X = np.zeros((4, 2), np.float32)
    with pytest.raises(MetamedValueError, match=r"binary outcome must hold 0/1, got also \[2\.0\]"):
        Task("a", X, np.array([0, 1, 2, 1]))
    with pytest.raises(MetamedValueError, match="binary outcome must hold 0/1"):
        Task("a", X, np.array([0.0, 1.0, 0.5, 1.0]))
    assert Task("a", X, np.array([0, 1, 2, 1]), "numeric").y.tolist() == [0, 1, 2, 1]
    assert Task("a", X, np.array([True, False, True, True])).y.dtype == np.float32


def test_subset_of_a_binary_task_keeps_labels_checked() -> None:
    task = Task("a", np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1], np.float32))
    assert task.subset(np.array([1, 3])).y.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (np.nan, "is missing in 1 row"),
        (np.inf, "holds an infinite value"),
        (1e308, "holds 1e\\+308"),
    ],
)
def test_outcomes_and_features_must_fit_float32(bad: float, said: str) -> None:
    X = np.zeros((3, 2))
    with pytest.raises(MetamedValueError, match=f"Task 'a': the outcome {said}"):
        Task("a", X, np.array([0.0, 1.0, bad]), "numeric")
    X[1, 1] = bad
    with pytest.raises(MetamedValueError, match="features contain NaN, inf or values beyond"):
        Task("a", X, np.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"X": "abc"}, MetamedTypeError, "X must be an array of numbers"),
        ({"X": [["a", "b"]], "y": [1]}, MetamedTypeError, "X must be an array of numbers"),
        ({"y": None}, MetamedTypeError, "y must be an array of numbers"),
        ({"outcome_type": "survival"}, MetamedValueError, "outcome_type must be one of"),
    ],
)
def test_wrong_argument_types_name_the_argument(kwargs, error, match) -> None:
    args = {"name": "a", "X": np.zeros((2, 1)), "y": [0, 1]} | kwargs
    with pytest.raises(error, match=match):
        Task(**args)


def test_subset_keeps_rows_and_refuses_a_scalar_index():
    rng = np.random.default_rng(0)
    task = Task("t", rng.normal(size=(7, 3)).astype(np.float32), np.array([0, 1] * 3 + [1.0]))
    idx = np.array([5, 0, 2])
    part = task.subset(idx)
    np.testing.assert_array_equal(part.X, task.X[idx])
    np.testing.assert_array_equal(part.y, task.y[idx])
    assert (part.name, part.outcome_type) == (task.name, task.outcome_type)
    assert part.X.dtype == np.float32 and part.y.dtype == np.float32
    with pytest.raises(MetamedValueError, match="row positions"):
        task.subset(3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_a_single_bad_value_anywhere_is_refused(bad):
    X = np.zeros((4, 5))
    X[3, 4] = bad
    with pytest.raises(MetamedValueError, match="float32 range"):
        Task("t", X, np.array([0, 1, 0, 1]))
