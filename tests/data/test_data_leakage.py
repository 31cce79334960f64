"""Leakage at the data level: model inputs never depend on labels or on held-out rows.

Task construction (``Preprocessor`` fitted on the training tasks, ``make_tasks``) is run
on a small cohort and again after changing labels or one held-out row; no feature
matrix entry may move except that row's own.  Random labels change the held-out task's
prevalence, so a feature carrying a task's base rate (query rows included) fails too.
The canary feeds a table whose outcome is copied into another column: it must be
refused, or the copy must not become a feature.

Assertion messages start with ``"leak:"`` (see ``benchmarks/leakage_mutants.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Preprocessor, Schema, cohort_from_table
from metamed.errors import MetamedError
from metamed.tasks import TaskSet, make_tasks

HELD_OUT = "site3"


def make_cohort(seed: int = 0) -> Cohort:
    """Four sites: numeric features with gaps, a categorical and a code-set column."""
    rng = np.random.default_rng(seed)
    n = 30
    frames = []
    for s in range(4):
        frame = pd.DataFrame(rng.normal(size=(n, 2)) + 0.5 * s, columns=["a", "b"])
        frame.loc[rng.random(n) < 0.2, "b"] = np.nan
        frame["kind"] = rng.choice(["p", "q"], n)
        frame["codes"] = [";".join(rng.choice(["I10", "E11", "N18"], 2)) for _ in range(n)]
        frame["site"] = f"site{s}"
        frame["died"] = (rng.random(n) < 0.4).astype(int)
        frame.loc[:1, "died"] = [0, 1]
        frames.append(frame)
    schema = Schema(
        outcome="died",
        numeric=("a", "b"),
        categorical=("kind",),
        codesets=("codes",),
        group=("site",),
    )
    return Cohort("leak", pd.concat(frames, ignore_index=True), schema, {"source": "test"})


def features(cohort: Cohort) -> dict[str, np.ndarray]:
    """Model inputs of every task, preprocessing fitted on all sites but the held-out one."""
    taskset = TaskSet(cohort, "site")
    split = taskset.split([HELD_OUT])
    prep = Preprocessor(cohort.schema).fit(taskset.frames(split.train))
    tasks = make_tasks(taskset, [*split.train, *split.test], prep)
    return {t.name: t.X for t in tasks}


def relabelled(cohort: Cohort, site: str, how: str) -> Cohort:
    frame = cohort.frame.copy()
    rows = frame.index[frame["site"] == site]
    y = frame.loc[rows, "died"].to_numpy()
    rng = np.random.default_rng(1)
    new = rng.permutation(y) if how == "permute" else (rng.random(len(y)) < 0.9).astype(int)
    assert not np.array_equal(new, y)
    if how == "random":
        assert abs(new.mean() - y.mean()) > 0.2, "random labels must move the prevalence"
    frame.loc[rows, "died"] = new
    return Cohort(cohort.name, frame, cohort.schema, cohort.provenance)


def assert_same_features(before: dict, after: dict, what: str, except_row=None) -> None:
    assert before.keys() == after.keys()
    for name in before:
        b, a = before[name], after[name]
        assert b.shape == a.shape, f"leak: {what} changed the shape of task {name}'s features"
        same = b == a
        if except_row is not None and name == except_row[0]:
            same[except_row[1]] = True
        bad = np.argwhere(~same)
        assert len(bad) == 0, (
            f"leak: {what} changed {len(bad)} feature entries of task {name} (first at row "
            f"{bad[0][0]}, column {bad[0][1]}: {b[tuple(bad[0])]} -> {a[tuple(bad[0])]}); "
            "model inputs must not depend on labels or on other held-out rows"
        )


@pytest.mark.parametrize("how", ["permute", "random"])
def test_held_out_labels_do_not_reach_any_feature(how: str) -> None:
    cohort = make_cohort()
    assert_same_features(
        features(cohort), features(relabelled(cohort, HELD_OUT, how)), f"{how} of held-out labels"
    )


@pytest.mark.parametrize("how", ["permute", "random"])
def test_training_labels_do_not_reach_any_feature(how: str) -> None:
    cohort = make_cohort()
    assert_same_features(
        features(cohort), features(relabelled(cohort, "site0", how)), f"{how} of training labels"
    )


def test_tasks_carry_their_own_labels_unchanged() -> None:
    cohort = make_cohort()
    taskset = TaskSet(cohort, "site")
    prep = Preprocessor(cohort.schema).fit(taskset.frames(["site0", "site1", "site2"]))
    for task in make_tasks(taskset, taskset.names, prep):
        expected = cohort.frame["died"].to_numpy()[taskset.rows(task.name)]
        np.testing.assert_array_equal(task.y, expected)
        assert task.X.shape == (len(expected), prep.n_features_out)


def test_one_held_out_row_moves_only_its_own_features() -> None:
    cohort = make_cohort()
    frame = cohort.frame.copy()
    row = int(TaskSet(cohort, "site").rows(HELD_OUT)[5])
    frame.loc[row, ["a", "b"]] = [40.0, np.nan]
    frame.loc[row, "kind"] = "unseen"
    frame.loc[row, "codes"] = "Z99"
    changed = Cohort(cohort.name, frame, cohort.schema, cohort.provenance)
    position = int(np.flatnonzero(TaskSet(cohort, "site").rows(HELD_OUT) == row)[0])
    before, after = features(cohort), features(changed)
    assert not np.array_equal(before[HELD_OUT][position], after[HELD_OUT][position])
    assert_same_features(
        before, after, "changing one held-out row", except_row=(HELD_OUT, position)
    )


# -- canary: an outcome copied into another column -----------------------------------------
def _leaky_table() -> pd.DataFrame:
    frame = make_cohort().frame.drop(columns="codes")
    frame["followup_status"] = frame["died"]  # the outcome under another name
    return frame


def _refused_or_dropped(make, column: str) -> None:
    """``make()`` raises a metamed error naming ``column``, or no feature copies the outcome."""
    try:
        cohort = make()
    except MetamedError as error:
        assert f"'{column}'" in str(error), f"the refusal should name '{column}': {error}"
        return
    y = cohort.frame[cohort.schema.outcome].to_numpy(dtype=float)
    for col in cohort.schema.features:
        values = pd.to_numeric(cohort.frame[col], errors="coerce").to_numpy(dtype=float)
        assert not np.array_equal(values, y), (
            f"leak: feature '{col}' is a copy of the outcome '{cohort.schema.outcome}'; a "
            "table holding the outcome twice must be refused or the copy dropped"
        )


def test_outcome_copied_under_another_name_is_refused_or_dropped() -> None:
    _refused_or_dropped(
        lambda: cohort_from_table(_leaky_table(), "site", "died"), "followup_status"
    )


def test_outcome_copied_as_floats_is_refused_or_dropped() -> None:
    frame = _leaky_table()
    frame["followup_status"] = frame["died"].astype(float)
    _refused_or_dropped(lambda: cohort_from_table(frame, "site", "died"), "followup_status")


def test_repeated_outcome_header_in_a_csv_is_refused_or_dropped(tmp_path) -> None:
    frame = _leaky_table().drop(columns="followup_status")
    path = tmp_path / "cohort.csv"
    header = ",".join([*frame.columns, "died"])
    body = pd.concat([frame, frame["died"]], axis=1).to_csv(index=False, header=False)
    path.write_text(header + "\n" + body)
    _refused_or_dropped(lambda: cohort_from_table(path, "site", "died"), "died")
