"""The rare-conditions split: the stated rule, its skipped cohorts and their reasons."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema
from metamed.errors import MetamedValueError
from metamed.tasks import RareRule, TaskSet, rare_split


def condition_cohort(sizes: dict[str, tuple[int, int]], seed: int = 0) -> Cohort:
    """One row per patient; ``sizes`` maps a condition to (patients, positives)."""
    rng = np.random.default_rng(seed)
    frames = []
    first_id = 0
    for name, (n, positives) in sizes.items():
        y = np.zeros(n, dtype=int)
        y[rng.choice(n, positives, replace=False)] = 1
        frames.append(
            pd.DataFrame(
                {
                    "x": rng.normal(size=n) + y,
                    "condition": name,
                    "patient": np.arange(first_id, first_id + n),
                    "event": y,
                }
            )
        )
        first_id += n
    schema = Schema(outcome="event", numeric=("x",), group=("condition", "patient"))
    return Cohort("conditions", pd.concat(frames, ignore_index=True), schema, {"source": "test"})


SIZES = {
    "common-a": (300, 40),
    "common-b": (250, 30),
    "common-c": (200, 20),
    "common-d": (120, 15),  # exactly at n_common below: common
    "rare-a": (80, 10),
    "rare-b": (45, 3),  # exactly max(K) + min_query patients and min_per_class positives
    "tiny": (44, 10),  # one patient short
    "one-class": (90, 0),
    "few-positives": (90, 2),
}
RULE = RareRule(n_common=120, min_query=25, min_per_class=3, val_fraction=0.25)
SHOTS = (5, 10, 20)


def test_the_rule_puts_each_cohort_where_it_says() -> None:
    result = rare_split(TaskSet(condition_cohort(SIZES), "condition"), RULE, SHOTS, seed=0)
    split = result.split
    assert set(split.train) | set(split.val) == {"common-a", "common-b", "common-c", "common-d"}
    assert len(split.val) == 1  # 25 % of four common cohorts
    assert split.test == ("rare-a", "rare-b")
    assert set(result.skipped) == {"tiny", "one-class", "few-positives"}
    assert result.skipped["tiny"].startswith("too few patients: 44 < 45")
    assert result.skipped["one-class"].startswith("one class")
    assert result.skipped["few-positives"].startswith("too few of one class: 2 < 3")
    assert result.counts() == {
        "common_train": 3,
        "common_val": 1,
        "rare_test": 2,
        "skipped": 3,
        "skipped_one_class": 1,
        "skipped_too_few_of_one_class": 1,
        "skipped_too_few_patients": 1,
    }
    assert result.to_dict()["rule"] == RULE.to_dict()


def test_skipped_cohorts_are_logged_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="metamed"):
        rare_split(TaskSet(condition_cohort(SIZES), "condition"), RULE, SHOTS)
    text = caplog.text
    for name in ("tiny", "one-class", "few-positives"):
        assert f"'{name}' skipped" in text
    assert "'rare-a' skipped" not in text


def test_the_split_is_seeded_and_reads_no_patient_label() -> None:
    taskset = TaskSet(condition_cohort(SIZES), "condition")
    first = rare_split(taskset, RULE, SHOTS, seed=3)
    assert rare_split(taskset, RULE, SHOTS, seed=3) == first
    # the same cohort sizes and class counts with the labels moved to other patients:
    # the same split (the rule reads counts only)
    shuffled = condition_cohort(SIZES, seed=9)
    assert rare_split(TaskSet(shuffled, "condition"), RULE, SHOTS, seed=3).split == first.split


def test_a_larger_k_moves_small_rare_cohorts_to_skipped() -> None:
    taskset = TaskSet(condition_cohort(SIZES), "condition")
    result = rare_split(taskset, RULE, (5, 10, 50))
    assert result.split.test == ("rare-a",)
    assert "rare-b" in result.skipped


@pytest.mark.parametrize(
    ("rule", "shots", "message"),
    [
        (RareRule(n_common=1000), SHOTS, "no cohort has n_common = 1000 patients or more"),
        (RareRule(n_common=60), (5, 200), "no cohort below n_common = 60 patients can be"),
    ],
)
def test_no_common_or_no_rare_cohort_is_one_clear_error(
    rule: RareRule, shots: tuple[int, ...], message: str
) -> None:
    with pytest.raises(MetamedValueError, match=message):
        rare_split(TaskSet(condition_cohort(SIZES), "condition"), rule, shots)


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_common=0),
        dict(n_common=True),
        dict(n_common=10, min_query=0),
        dict(n_common=10, val_fraction=1.0),
    ],
)
def test_bad_rule_values_are_refused(bad: dict) -> None:
    with pytest.raises(MetamedValueError, match="rare split: "):
        RareRule(**bad)
