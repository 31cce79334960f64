"""Code-set features: the ICD-9 hierarchy, vocabularies fitted on meta-train rows only,
the unknown bucket and its counts, and the fitted state's round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metamed.data import Cohort, Schema
from metamed.data.icd9 import (
    ICD9_CHAPTERS,
    icd9_category,
    icd9_chapter,
    icd9_chapter_name,
    normalize_icd9,
)
from metamed.data.preprocess import UNKNOWN_CODE, Preprocessor
from metamed.errors import MetamedValueError, UnknownNameError
from metamed.learners import Pipeline, make_learner
from metamed.tasks import TaskSet, make_tasks

SCHEMA = Schema(outcome="y", numeric=("age",), codesets=("dx",), group=("cohort",))


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [50.0, 60.0, 70.0, 80.0, 55.0, 65.0],
            "dx": ["250.01;428.0", "250.02", "428.0;8", None, "V57.1;250.01", "E849.7"],
            "cohort": ["a", "a", "a", "b", "b", "b"],
            "y": [0, 1, 0, 1, 0, 1],
        }
    )


def _bucket(pre: Preprocessor, col: str = "dx") -> int:
    return pre.feature_names_.index(f"{col}:{UNKNOWN_CODE}")


# -- the ICD-9-CM hierarchy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "canonical", "category", "chapter"),
    [
        ("250.83", "250.83", "250", "240-279"),
        ("8", "008", "008", "001-139"),  # a leading zero lost in a spreadsheet
        ("38.9", "038.9", "038", "001-139"),
        (" v57.1 ", "V57.1", "V57", "V01-V91"),
        ("E849.7", "E849.7", "E849", "E000-E999"),
        ("428", "428", "428", "390-459"),
        ("999", "999", "999", "800-999"),
    ],
)
def test_icd9_hierarchy(code: str, canonical: str, category: str, chapter: str) -> None:
    assert normalize_icd9(code) == canonical
    assert icd9_category(code) == category
    assert icd9_chapter(code) == chapter


@pytest.mark.parametrize("text", ["", "000", "V00", "V92", "E12", "250.123", "I10", "abc", "25 0"])
def test_text_that_is_not_icd9_has_no_place(text: str) -> None:
    assert normalize_icd9(text) is None
    assert icd9_category(text) is None and icd9_chapter(text) is None


def test_chapters_partition_every_category() -> None:
    categories = (
        [f"{n:03d}" for n in range(1, 1000)]
        + [f"V{n:02d}" for n in range(1, 92)]
        + [f"E{n:03d}" for n in range(1000)]
    )
    for category in categories:
        holding = [(a, b) for a, b, _ in ICD9_CHAPTERS if a <= category <= b]
        assert len(holding) == 1, category
        assert icd9_chapter(category) == "-".join(holding[0])
    assert icd9_chapter_name("390-459") == "circulatory system"
    assert len(ICD9_CHAPTERS) == 19


# -- vocabulary, roll-up and the unknown bucket ----------------------------------------


def test_codes_roll_up_to_category_and_chapter() -> None:
    pre = Preprocessor(SCHEMA, code_levels=("icd9_category", "icd9_chapter")).fit(_frame())
    assert pre.codes_["dx"] == [
        "001-139",
        "008",
        "240-279",
        "250",
        "390-459",
        "428",
        "E000-E999",
        "E849",
        "V01-V91",
        "V57",
    ]
    X = pre.transform(_frame())
    row = dict(zip(pre.feature_names_, X[0], strict=True))
    assert row["dx:250"] == row["dx:240-279"] == row["dx:428"] == row["dx:390-459"] == 1
    assert X[0, 1:].sum() == 4  # two codes, two levels each; nothing unknown
    assert X[:, _bucket(pre)].sum() == 0
    only_chapters = Preprocessor(SCHEMA, code_levels="icd9_chapter").fit(_frame())
    assert only_chapters.codes_["dx"] == ["001-139", "240-279", "390-459", "E000-E999", "V01-V91"]


def test_min_code_count_sends_rare_codes_to_the_bucket_and_counts_them() -> None:
    pre = Preprocessor(SCHEMA, min_code_count=2).fit(_frame())
    # Only 250.01 and 428.0 appear in two rows.
    assert pre.codes_["dx"] == ["250.01", "428.0"]
    X = pre.transform(_frame())
    np.testing.assert_array_equal(X[:, _bucket(pre)], [0, 1, 1, 0, 1, 1])
    # Fit rows 1, 2, 4, 5 hold a rare code; 250.02, 008, V57.1 and E849.7 are four.
    assert pre.unknown_codes_ == {"dx": {"rows": 4, "codes": 4}}
    with pytest.raises(MetamedValueError, match="min_code_count must be an integer >= 1"):
        Preprocessor(SCHEMA, min_code_count=0).fit(_frame())


def test_unseen_and_non_icd9_codes_go_to_the_bucket_at_transform() -> None:
    pre = Preprocessor(SCHEMA, code_levels=("icd9_category",)).fit(_frame())
    width = len(pre.feature_names_)
    new = _frame().iloc[:3].copy()
    new["dx"] = ["250.5;999.9", "not-a-code", None]
    X = pre.transform(new)
    assert X.shape == (3, width)  # a new code never adds a column
    np.testing.assert_array_equal(X[:, _bucket(pre)], [1, 1, 0])
    assert X[0, pre.feature_names_.index("dx:250")] == 1  # 250.5 is known by its category
    assert pre.count_unknown_codes(new) == {"dx": {"rows": 2, "codes": 2}}


def test_rolling_up_a_column_that_is_not_icd9_is_refused_at_fit() -> None:
    frame = _frame()
    frame["dx"] = ["I10;J44.9", "I10", None, "N18", "J44.9", "I10"]
    with pytest.raises(MetamedValueError, match=r"'dx' holds the code 'I10'.*icd9_chapter"):
        Preprocessor(SCHEMA, code_levels=("icd9_chapter",)).fit(frame)
    with pytest.raises(UnknownNameError, match="Did you mean 'icd9_category'"):
        Preprocessor(SCHEMA, code_levels=("icd9_categry",)).fit(frame)
    with pytest.raises(MetamedValueError, match="'dxs'.*Did you mean 'dx'"):
        Preprocessor(SCHEMA, code_levels={"dxs": ("code",)}).fit(frame)


def test_levels_per_column() -> None:
    schema = Schema(outcome="y", codesets=("dx", "history"), group=("cohort",))
    frame = _frame().assign(history=["copd", "copd;chf", None, "chf", "chf", "copd"])
    pre = Preprocessor(schema, code_levels={"dx": ["icd9_chapter"]}).fit(frame)
    assert pre.code_levels_ == {"dx": ("icd9_chapter",), "history": ("code",)}
    assert pre.codes_["history"] == ["chf", "copd"]
    assert pre.codes_["dx"][0] == "001-139"


# -- the fitted state ------------------------------------------------------------------


def test_round_trip_through_json_keeps_vocabulary_levels_and_counts() -> None:
    pre = Preprocessor(
        SCHEMA, max_codes=3, min_code_count=1, code_levels=("icd9_category", "icd9_chapter")
    ).fit(_frame())
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again.feature_names_ == pre.feature_names_
    assert again.code_levels_ == pre.code_levels_ and again.unknown_codes_ == pre.unknown_codes_
    new = _frame().assign(dx=["250.5;V01", "E849", "zzz", None, "428", "8"])
    np.testing.assert_array_equal(again.transform(new), pre.transform(new))
    assert again.count_unknown_codes(new) == pre.count_unknown_codes(new)


def test_state_saved_before_the_bucket_existed_keeps_its_layout() -> None:
    state = Preprocessor(SCHEMA).fit(_frame()).to_dict()
    for key in ("min_code_count", "code_levels", "unknown_codes"):
        del state[key]  # what a metamed without unknown buckets wrote
    old = Preprocessor.from_dict(state)
    assert not old.unknown_bucket_
    codes = ["250.01", "250.02", "428.0", "8", "E849.7", "V57.1"]  # as written: level "code"
    assert old.feature_names_ == ["age", *(f"dx:{code}" for code in codes)]
    X = old.transform(_frame().assign(dx=["250.01;zzz"] * 6))
    np.testing.assert_array_equal(X[:, 1:], np.tile([1, 0, 0, 0, 0, 0], (6, 1)))


def test_pipeline_with_code_sets_round_trips_as_an_artifact(tmp_path) -> None:
    frame = pd.concat([_frame()] * 4, ignore_index=True)
    frame["cohort"] = np.repeat(["a", "b", "c", "d"], 6)
    taskset = TaskSet(Cohort("codes", frame, SCHEMA))
    pre = Preprocessor(SCHEMA, code_levels=("icd9_category",)).fit(taskset.frames(["a", "b"]))
    learner = make_learner("pooled", random_state=0, max_epochs=5)
    learner.meta_fit(make_tasks(taskset, ["a", "b", "c"], pre))
    support = taskset.frame("d")
    rows = support.assign(dx=["250.5", "V99.9", "428.0;E849", None, "8", "zzz"])
    pipeline = Pipeline(pre, learner)
    loaded = Pipeline.load(pipeline.save(tmp_path / "model"))
    assert loaded.preprocessor.feature_names_ == pre.feature_names_
    assert loaded.preprocessor.count_unknown_codes(rows) == {"dx": {"rows": 2, "codes": 2}}
    np.testing.assert_array_equal(
        loaded.adapt(support).predict_proba(rows), pipeline.adapt(support).predict_proba(rows)
    )


# -- leakage: held-out rows never shape the vocabulary ---------------------------------

_CODES = ["250.01", "250.02", "428.0", "414.01", "8", "V57.1", "E849.7", "786.5", "486"]


def _cohort(rng: np.random.Generator, n: int = 60) -> Cohort:
    frame = pd.DataFrame(
        {
            "age": rng.normal(60, 10, n),
            "dx": [";".join(rng.choice(_CODES, rng.integers(0, 4))) or None for _ in range(n)],
            "cohort": rng.choice(["a", "b", "c", "rare"], n, p=[0.3, 0.3, 0.3, 0.1]),
            "y": rng.integers(0, 2, n),
        }
    )
    frame.loc[:3, "cohort"] = ["a", "b", "c", "rare"]  # every task present
    return Cohort("codes", frame, SCHEMA)


@settings(
    max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**16),
    new_codes=st.lists(st.sampled_from([*_CODES, "999.9", "V01", "E000"]), max_size=4),
    levels=st.sampled_from([("code",), ("icd9_category",), ("icd9_category", "icd9_chapter")]),
    min_count=st.integers(1, 3),
)
def test_held_out_codes_and_labels_never_change_the_vocabulary(
    seed: int, new_codes: list[str], levels: tuple[str, ...], min_count: int
) -> None:
    rng = np.random.default_rng(seed)
    cohort = _cohort(rng)
    taskset = TaskSet(cohort)
    split = taskset.split(["rare"], val_fraction=0.34, seed=seed)
    held_out = cohort.frame["cohort"].isin([*split.val, *split.test]).to_numpy()

    def fitted(frame: pd.DataFrame) -> Preprocessor:
        tasks = TaskSet(Cohort("codes", frame, SCHEMA))
        return Preprocessor(SCHEMA, max_codes=5, min_code_count=min_count, code_levels=levels).fit(
            tasks.frames(split.train)
        )

    reference = fitted(cohort.frame)
    changed = cohort.frame.copy()
    # Permute the held-out rows' codes and labels among themselves, and give some of them
    # codes no training row holds.
    order = rng.permutation(int(held_out.sum()))
    changed.loc[held_out, "dx"] = changed.loc[held_out, "dx"].to_numpy()[order]
    changed.loc[held_out, "y"] = 1 - changed.loc[held_out, "y"].to_numpy()
    if new_codes:
        changed.loc[np.flatnonzero(held_out)[0], "dx"] = ";".join(new_codes)
    other = fitted(changed)
    assert other.codes_ == reference.codes_
    assert other.feature_names_ == reference.feature_names_
    assert other.unknown_codes_ == reference.unknown_codes_
    train_rows = taskset.frames(split.train)
    np.testing.assert_array_equal(other.transform(train_rows), reference.transform(train_rows))
