"""Tests of the fit-on-train preprocessor, outcome extraction and task building."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema
from metamed.data.preprocess import (
    MISSING_LEVEL,
    OTHER_LEVEL,
    UNKNOWN_CODE,
    Preprocessor,
    outcome_array,
)
from metamed.errors import MetamedTypeError, MetamedValueError, NotFittedError
from metamed.tasks import TaskSet, make_tasks

SCHEMA = Schema(
    outcome="y",
    numeric=("age", "chol"),
    categorical=("cp",),
    codesets=("dx",),
    group=("site",),
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [40.0, 50.0, 60.0, 70.0],
            "chol": [200.0, np.nan, 240.0, 260.0],
            "cp": ["a", "b", "b", None],
            "dx": ["I10;E11", "I10", None, "I10; N18"],
            "site": ["s1", "s1", "s2", "s2"],
            "y": [0, 1, 0, 1],
        }
    )


def test_fit_transform_layout_and_values() -> None:
    pre = Preprocessor(SCHEMA).fit(_frame())
    assert pre.feature_names_ == [
        "age",
        "chol",
        "chol__missing",
        f"cp={MISSING_LEVEL}",
        "cp=a",
        "cp=b",
        f"cp={OTHER_LEVEL}",
        "dx:E11",
        "dx:I10",
        "dx:N18",
        f"dx:{UNKNOWN_CODE}",
    ]
    X = pre.transform(_frame())
    assert X.dtype == np.float32 and X.shape == (4, len(pre.feature_names_))
    # Standardised numeric columns: mean 0, std 1 on the fit data.
    np.testing.assert_allclose(X[:, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(X[:, 0].std(), 1.0, atol=1e-6)
    # chol missing in row 1 -> imputed with the median 240 and flagged.
    assert pre.medians_["chol"] == 240.0
    np.testing.assert_array_equal(X[:, 2], [0, 1, 0, 0])
    np.testing.assert_allclose(X[1, 1], X[2, 1])
    # One-hot rows sum to one per categorical column; missing is its own level.
    np.testing.assert_array_equal(X[:, 3:7].sum(axis=1), np.ones(4))
    np.testing.assert_array_equal(X[3, 3:7], [1, 0, 0, 0])
    # Multi-hot codes, whitespace around codes ignored, missing cell -> no code.
    # Every code was seen at fit: the unknown bucket stays empty.
    np.testing.assert_array_equal(
        X[:, 7:11], [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0]]
    )


def test_unseen_category_and_new_missing_go_to_fixed_columns() -> None:
    train = _frame()
    train["cp"] = ["a", "b", "b", "a"]  # no missing cp at fit
    pre = Preprocessor(SCHEMA).fit(train)
    new = _frame().iloc[:2].copy()
    new["cp"] = ["zzz", None]
    new["dx"] = ["Q99", "E11;Q99"]
    new["age"] = [np.nan, 45.0]
    X = pre.transform(new)
    assert X.shape == (2, len(pre.feature_names_))
    other = pre.feature_names_.index(f"cp={OTHER_LEVEL}")
    assert X[0, other] == 1.0 and X[1, other] == 1.0
    # age had no missing value at fit: no indicator column; imputed with the fit median.
    assert "age__missing" not in pre.feature_names_
    expected = (pre.medians_["age"] - pre.means_["age"]) / pre.stds_["age"]
    np.testing.assert_allclose(X[0, 0], expected, rtol=1e-6)
    codes = [pre.feature_names_.index(n) for n in ("dx:E11", "dx:I10", "dx:N18")]
    np.testing.assert_array_equal(X[:, codes], [[0, 0, 0], [1, 0, 0]])
    # Q99 was never seen at fit: both rows hold it, so both set the unknown bucket.
    np.testing.assert_array_equal(X[:, pre.feature_names_.index(f"dx:{UNKNOWN_CODE}")], [1, 1])
    assert np.isfinite(X).all()


def test_all_nan_column_and_constant_column_stay_finite() -> None:
    train = _frame()
    train["chol"] = np.nan
    train["age"] = 55.0
    pre = Preprocessor(SCHEMA).fit(train)
    X = pre.transform(train)
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X[:, pre.feature_names_.index("chol__missing")], np.ones(4))
    np.testing.assert_array_equal(X[:, 0], np.zeros(4))
    test = _frame()  # real values at transform time for a column that was all-NaN at fit
    assert np.isfinite(pre.transform(test)).all()
    # An all-missing *object* column (e.g. read from CSV as empty text) is accepted too.
    test["chol"] = pd.Series([None] * 4, dtype=object)
    assert np.isfinite(pre.transform(test)).all()


def test_fit_never_reads_group_or_outcome_columns() -> None:
    frame = _frame()
    reference = Preprocessor(SCHEMA).fit(frame)
    shuffled = frame.copy()
    shuffled["y"] = [1, 1, 1, 1]
    shuffled["site"] = ["x", "y", "z", "w"]
    other = Preprocessor(SCHEMA).fit(shuffled)
    assert other.feature_names_ == reference.feature_names_
    np.testing.assert_array_equal(other.transform(frame), reference.transform(frame))
    # Works with the outcome and group columns absent altogether.
    bare = frame.drop(columns=["y", "site"])
    pre = Preprocessor(SCHEMA).fit(bare)
    np.testing.assert_array_equal(pre.transform(bare), reference.transform(frame))
    assert not any(n.startswith(("y", "site")) for n in pre.feature_names_)


def test_max_codes_keeps_most_frequent() -> None:
    pre = Preprocessor(SCHEMA, max_codes=1).fit(_frame())
    assert pre.codes_["dx"] == ["I10"]
    pre0 = Preprocessor(SCHEMA, max_codes=0).fit(_frame())
    # No vocabulary: only the bucket is left, set in every row that holds a code.
    assert [n for n in pre0.feature_names_ if n.startswith("dx:")] == [f"dx:{UNKNOWN_CODE}"]
    np.testing.assert_array_equal(pre0.transform(_frame())[:, -1], [1, 1, 0, 1])


def test_errors() -> None:
    pre = Preprocessor(SCHEMA)
    with pytest.raises(NotFittedError, match="fit"):
        pre.transform(_frame())
    with pytest.raises(MetamedValueError, match="empty"):
        pre.fit(_frame().iloc[:0])
    with pytest.raises(MetamedValueError, match="Did you mean 'chl'"):
        pre.fit(_frame().rename(columns={"chol": "chl"}))
    bad = _frame()
    bad["age"] = ["40", "fifty", "60", "70"]
    with pytest.raises(MetamedTypeError, match="fifty"):
        pre.fit(bad)
    with pytest.raises(MetamedValueError, match="max_codes"):
        Preprocessor(SCHEMA, max_codes=-1).fit(_frame())


def test_round_trip_through_json() -> None:
    pre = Preprocessor(SCHEMA).fit(_frame())
    state = json.loads(json.dumps(pre.to_dict()))
    again = Preprocessor.from_dict(state)
    assert again.feature_names_ == pre.feature_names_
    np.testing.assert_array_equal(again.transform(_frame()), pre.transform(_frame()))


def test_outcome_array_checks() -> None:
    np.testing.assert_array_equal(outcome_array(_frame(), SCHEMA), [0, 1, 0, 1])
    bad = _frame()
    bad["y"] = [0, 2, 0, 1]
    with pytest.raises(MetamedValueError, match="0/1"):
        outcome_array(bad, SCHEMA)
    bad["y"] = [0, np.nan, 0, 1]
    with pytest.raises(MetamedValueError, match="missing"):
        outcome_array(bad, SCHEMA)


def test_make_tasks_uses_train_fit_only() -> None:
    frame = pd.concat([_frame()] * 3, ignore_index=True)
    frame["site"] = ["s1"] * 4 + ["s2"] * 4 + ["s3"] * 4
    frame.loc[8:, "cp"] = "only-in-s3"
    cohort = Cohort("toy", frame, SCHEMA)
    taskset = TaskSet(cohort)
    split = taskset.split(["s3"])
    pre = Preprocessor(SCHEMA).fit(taskset.frames(split.train))
    assert "cp=only-in-s3" not in pre.feature_names_
    tasks = make_tasks(taskset, [*split.train, *split.test], pre)
    assert [t.name for t in tasks] == ["s1", "s2", "s3"]
    assert all(t.X.shape == (4, len(pre.feature_names_)) for t in tasks)
    other = pre.feature_names_.index(f"cp={OTHER_LEVEL}")
    np.testing.assert_array_equal(tasks[2].X[:, other], np.ones(4))
    np.testing.assert_array_equal(tasks[0].y, [0, 1, 0, 1])
    with pytest.raises(MetamedTypeError, match="list"):
        make_tasks(taskset, "s1", pre)


def test_make_tasks_rejects_preprocessor_of_another_schema() -> None:
    cohort = Cohort("toy", _frame(), SCHEMA)
    other = Schema(outcome="y", numeric=("age",), group=("site",))
    pre = Preprocessor(other).fit(_frame())
    with pytest.raises(MetamedValueError, match="fit a Preprocessor on this cohort"):
        make_tasks(TaskSet(cohort), ["s1"], pre)


def test_a_rare_flag_stays_zero_one_and_other_numbers_are_standardised() -> None:
    """IWPC's rifampin flag (0.07 % ones) standardised to about 38; a flag stays 0/1."""
    schema = Schema(outcome="y", numeric=("age", "flag", "constant"), group=("site",))
    n = 2000
    frame = pd.DataFrame(
        {
            "age": np.linspace(20.0, 80.0, n),
            "flag": np.r_[1.0, np.zeros(n - 1)],
            "constant": np.ones(n),
            "site": "s1",
            "y": np.arange(n) % 2,
        }
    )
    frame.loc[5, "flag"] = np.nan  # a missing flag takes the fit median, still 0/1
    pre = Preprocessor(schema).fit(frame)
    X = pre.transform(frame)
    flag = X[:, pre.feature_names_.index("flag")]
    assert set(np.unique(flag)) == {0.0, 1.0} and flag[0] == 1.0 and flag[5] == 0.0
    age = X[:, pre.feature_names_.index("age")]
    assert abs(age.mean()) < 1e-5 and age.std() == pytest.approx(1.0, abs=1e-4)
    # a constant column of ones is still centred, not read as a flag
    np.testing.assert_array_equal(X[:, pre.feature_names_.index("constant")], np.zeros(n))
    # the choice travels with the fitted state, and a state saved before it keeps scaling
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(frame), X)
    legacy = pre.to_dict()
    del legacy["binary"]
    assert np.abs(Preprocessor.from_dict(legacy).transform(frame)).max() > 30
