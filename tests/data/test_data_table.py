"""Bring-your-own-table: reading files, schema rules and one clear error per bad input."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.cohort import Cohort
from metamed.data.preprocess import Preprocessor
from metamed.data.registry import sha256_file
from metamed.data.table import cohort_from_table, infer_schema, load_table
from metamed.errors import (
    DataNotFoundError,
    MetamedError,
    MetamedTypeError,
    MetamedValueError,
    MetamedWarning,
    UnknownNameError,
)
from metamed.outcomes import BINARY, NUMERIC
from metamed.tasks import TaskSet, make_tasks


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hospital": ["a", "a", "b", "b", "c", "c"],
            "age_years": [50, 61, 70, 45, 80, 66],
            "lactate_mmol_l": [1.2, np.nan, 3.4, 0.9, 2.2, 1.1],
            "sex": ["F", "M", "M", "F", None, "F"],
            "ward_code": [1, 2, 1, 3, 2, 1],
            "smoker": [True, False, False, True, False, True],
            "dx": ["I10;E11", "I10", "", None, "N18", "E11"],
            "patient_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "died": [0, 1, 1, 0, 1, 0],
        }
    )


def test_infer_schema_rules() -> None:
    schema = infer_schema(
        _frame(),
        task_col="hospital",
        outcome_col="died",
        categorical_cols=["ward_code"],
        codeset_cols=["dx"],
        drop_cols=["patient_id"],
        units={"lactate_mmol_l": "mmol/L"},
    )
    assert schema.numeric == ("age_years", "lactate_mmol_l")
    assert schema.categorical == ("sex", "ward_code", "smoker")
    assert schema.codesets == ("dx",)
    assert schema.group == ("hospital",)
    assert schema.outcome_type is BINARY
    assert schema.units == {"lactate_mmol_l": "mmol/L"}
    numeric = infer_schema(
        _frame().assign(died=[0.5, 1, 2, 0, 1, 0]),
        "hospital",
        "died",
        drop_cols=["patient_id", "dx"],
    )
    assert numeric.outcome_type is NUMERIC
    explicit = infer_schema(_frame(), "hospital", "died", feature_cols=["age_years", "sex"])
    assert explicit.features == ("age_years", "sex")


def test_unknown_columns_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="task_col.*Did you mean 'hospital'"):
        infer_schema(_frame(), "hospitl", "died")
    with pytest.raises(UnknownNameError, match="drop_cols.*Did you mean 'patient_id'"):
        infer_schema(_frame(), "hospital", "died", drop_cols=["patient_idd"])


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (
            {"lactate_mmol_l": ["1.2", "<0.5", "3.4", "0.9", "2.2", "1.1"]},
            {},
            MetamedTypeError,
            r"'lactate_mmol_l' is text but 83% .*'<0\.5'",
        ),
        (
            {"died": ["no", "yes", "yes", "no", "yes", "no"]},
            {},
            MetamedTypeError,
            "positive_label='yes'",
        ),
        ({"died": [0, 1, np.nan, 0, 1, 0]}, {}, MetamedValueError, "missing in 1 row"),
        ({}, {"outcome_col": "hospital"}, MetamedValueError, "both 'hospital'"),
        ({}, {"categorical_cols": ["died"]}, MetamedValueError, "never features"),
        ({}, {"feature_cols": ["age_years", "died"]}, MetamedValueError, "feature_cols includes"),
        ({"when": pd.to_datetime(["2020-01-01"] * 6)}, {}, MetamedTypeError, "dates"),
        ({}, {"max_levels": 3}, MetamedValueError, "'patient_id' has 6 distinct values"),
        ({}, {"outcome_type": "survival"}, MetamedValueError, "outcome_type"),
    ],
)
def test_bad_inputs_raise_one_clear_error(change, kwargs, error, match) -> None:
    frame = _frame().assign(**change)
    args = {"task_col": "hospital", "outcome_col": "died", "codeset_cols": ["dx"]} | kwargs
    if "max_levels" not in kwargs:
        args["drop_cols"] = ["patient_id"]
    with pytest.raises(error, match=match):
        infer_schema(frame, **args)


def test_mostly_numeric_text_can_be_declared_categorical() -> None:
    frame = _frame().assign(grade=["1", "2", "2", "1", "x", "1"])
    schema = infer_schema(
        frame, "hospital", "died", categorical_cols=["grade"], drop_cols=["patient_id", "dx"]
    )
    assert "grade" in schema.categorical


def test_cohort_from_table_files(tmp_path: Path) -> None:
    frame = _frame()
    csv = tmp_path / "icu.csv"
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "icu.parquet"
    frame.to_parquet(parquet)
    gz = tmp_path / "icu.csv.gz"
    with gzip.open(gz, "wt") as handle:
        frame.to_csv(handle, index=False)
    kwargs = dict(
        task_col="hospital", outcome_col="died", drop_cols=["patient_id"], codeset_cols=["dx"]
    )
    cohorts = [cohort_from_table(p, **kwargs) for p in (csv, parquet, gz)]
    for cohort in cohorts:
        assert cohort.name == "icu"
        assert cohort.n_patients == 6
        assert "patient_id" not in cohort.frame.columns
    assert cohorts[0].provenance["checksums"] == {"icu.csv": sha256_file(csv)}
    # The three files give the same model inputs.
    pre = Preprocessor(cohorts[0].schema).fit(cohorts[0].frame)
    X = pre.transform(cohorts[0].frame)
    for cohort in cohorts[1:]:
        np.testing.assert_allclose(pre.transform(cohort.frame), X)


def test_positive_label_recodes() -> None:
    frame = _frame().assign(died=["no", "yes", "yes", "no", "yes", "no"])
    cohort = cohort_from_table(
        frame, "hospital", "died", positive_label="yes", drop_cols=["patient_id", "dx"]
    )
    assert cohort.frame["died"].tolist() == [0, 1, 1, 0, 1, 0]
    assert cohort.schema.outcome_type is BINARY
    with pytest.raises(MetamedValueError, match="exactly two values"):
        cohort_from_table(frame, "hospital", "died", positive_label="maybe")
    status = _frame().assign(died=[1, 2, 2, 1, 2, 1])  # R survival coding: 2 = dead
    coded = cohort_from_table(
        status,
        "hospital",
        "died",
        positive_label=2,
        drop_cols=["dx"],
        categorical_cols=["patient_id"],
    )
    assert coded.frame["died"].tolist() == [0, 1, 1, 0, 1, 0]


def test_load_table_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(MetamedValueError, match="unknown file type.*parquet"):
        load_table(tmp_path / "table.xlsx")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(MetamedValueError, match="Cannot read 'bad.parquet' as PARQUET"):
        load_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MetamedValueError, match="Cannot read 'empty.csv'"):
        load_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(MetamedValueError, match="0 rows"):
        load_table(header_only)
    binary = tmp_path / "latin.csv"
    binary.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(MetamedError):
        load_table(binary)


# -- duplicated columns and copies of the outcome (a label leak) ----------------------------
def _site_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three hospitals, two features, a binary outcome with at least 10 patients per class."""
    rng = np.random.default_rng(seed)
    died = np.resize([0, 1], n)
    rng.shuffle(died)
    return pd.DataFrame(
        {
            "hospital": np.resize(["a", "b", "c"], n),
            "age_years": rng.normal(60, 10, n).round(1),
            "lactate_mmol_l": rng.gamma(2.0, 1.0, n).round(2),
            "died": died,
        }
    )


def test_duplicated_header_is_an_error_naming_the_columns(tmp_path: Path) -> None:
    frame = _site_table()
    csv = tmp_path / "icu.csv"
    # pandas would read this header as died, died.1 and age_years, age_years.1.
    rows = [",".join(["hospital", "died", "age_years", "died", "age_years"])]
    rows += [f"{h},{d},{a},{d},{a}" for h, d, a in frame[["hospital", "died", "age_years"]].values]
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        MetamedValueError, match=r"duplicated column names \('age_years' x2, 'died' x2\)"
    ):
        cohort_from_table(csv, "hospital", "died")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "icu.parquet"
    columns = [frame["hospital"], frame["died"], frame["died"]]
    pq.write_table(
        pa.table([pa.array(c) for c in columns], names=["hospital", "died", "died"]), parquet
    )
    with pytest.raises(MetamedValueError, match=r"'died' x2"):
        cohort_from_table(parquet, "hospital", "died")
    with pytest.raises(MetamedValueError, match=r"'died' x2"):
        cohort_from_table(pd.concat([frame, frame[["died"]]], axis=1), "hospital", "died")
    # A column that is really called "died.1" is only a name: it loads (raw header checked).
    distinct = frame.assign(**{"died.1": frame["age_years"]})
    distinct.to_csv(csv, index=False)
    assert "died.1" in cohort_from_table(csv, "hospital", "died").schema.numeric


@pytest.mark.parametrize("name", ["died.1", "outcome_copy", "zz"])
@pytest.mark.parametrize(
    "copy",
    [
        lambda y: y,
        lambda y: y.astype(float),
        lambda y: y.astype(bool),
        lambda y: 1 - y,
        lambda y: y.map({0: "alive", 1: "dead"}),
    ],
    ids=["same", "float", "bool", "inverted", "relabelled"],
)
def test_feature_copy_of_outcome_is_refused_under_any_name(name, copy) -> None:
    frame = _site_table().assign(**{name: lambda t: copy(t["died"])})
    with pytest.raises(MetamedValueError, match=f"'{name}'.*outcome 'died'.*drop-cols {name}"):
        cohort_from_table(frame, "hospital", "died")
    dropped = cohort_from_table(frame, "hospital", "died", drop_cols=[name])
    assert name not in dropped.schema.features


def test_feature_matching_outcome_by_chance_in_a_tiny_table_is_kept() -> None:
    # smoker is the inverse of died in these 6 rows: too few patients to call it a copy.
    schema = cohort_from_table(_frame(), "hospital", "died", drop_cols=["dx", "patient_id"]).schema
    assert "smoker" in schema.categorical


# -- outcomes coded with class numbers -----------------------------------------------------
@pytest.mark.parametrize("codes", [[0, 1, 2], [1, 2, 3, 4, 5], [0, 2]])
def test_class_code_outcome_needs_explicit_type(codes) -> None:
    frame = _site_table().assign(died=lambda t: np.resize(codes, len(t)))
    with pytest.raises(MetamedValueError, match=r"whole numbers.*--outcome-type numeric"):
        cohort_from_table(frame, "hospital", "died")
    numeric = cohort_from_table(frame, "hospital", "died", outcome_type="numeric")
    assert numeric.schema.outcome_type is NUMERIC
    assert numeric.frame["died"].tolist() == frame["died"].tolist()


def test_many_valued_whole_number_outcome_stays_numeric() -> None:
    frame = _site_table().assign(los_days=lambda t: np.arange(len(t)) % 30 + 1)
    schema = cohort_from_table(frame, "hospital", "los_days", drop_cols=["died"]).schema
    assert schema.outcome_type is NUMERIC


def test_one_two_status_coding_is_binary_with_stated_positive_label() -> None:
    frame = _site_table()
    status = frame.assign(died=frame["died"] + 1)  # R's survival status: 2 = died
    with pytest.warns(MetamedWarning, match="2 is taken as the positive class"):
        cohort = cohort_from_table(status, "hospital", "died")
    assert cohort.schema.outcome_type is BINARY
    assert cohort.frame["died"].tolist() == frame["died"].tolist()
    assert cohort.provenance["positive_label"] == "2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice needs no message
        reversed_ = cohort_from_table(status, "hospital", "died", positive_label=1)
        assert reversed_.frame["died"].tolist() == (1 - frame["died"]).tolist()
        numeric = cohort_from_table(status, "hospital", "died", outcome_type="numeric")
        assert numeric.schema.outcome_type is NUMERIC
        assert numeric.frame["died"].tolist() == status["died"].tolist()


# -- task values that differ only by whitespace or case ----------------------------------
def test_task_values_lose_surrounding_whitespace_with_a_message() -> None:
    frame = _site_table()
    padded = frame.assign(
        hospital=frame["hospital"].where(frame.index % 2 == 0, frame["hospital"] + " ")
    )
    with pytest.warns(MetamedWarning, match=r"removed surrounding whitespace from 30 value\(s\)"):
        cohort = cohort_from_table(padded, "hospital", "died")
    assert TaskSet(cohort).names == ["a", "b", "c"]
    assert TaskSet(cohort).summary()["n"].tolist() == [20, 20, 20]


def test_task_values_differing_only_by_case_are_refused() -> None:
    frame = _site_table()
    shouting = frame.assign(hospital=frame["hospital"].where(frame.index % 2 == 0, "A"))
    with pytest.raises(MetamedValueError, match=r"differ only by letter case.*'A' / 'a'"):
        cohort_from_table(shouting, "hospital", "died")
    # A cohort built directly (not from a table) is checked too, whitespace included.
    padded = frame.assign(hospital=frame["hospital"].where(frame.index % 2 == 0, "a "))
    schema = infer_schema(frame, "hospital", "died")
    with pytest.raises(MetamedValueError, match=r"'a' / 'a '"):
        Cohort("direct", padded, schema)


# -- values too large for the models ----------------------------------------------------
def test_huge_finite_value_gets_a_correct_message_and_no_raw_warning() -> None:
    frame = _site_table().assign(age_years=lambda t: t["age_years"].where(t.index != 3, 1e308))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw numpy overflow warning would fail here
        with pytest.raises(MetamedValueError, match=r"holds 1e\+308 \(row 3\), beyond") as info:
            cohort_from_table(frame, "hospital", "died")
        assert "NaN" not in str(info.value)
        schema = infer_schema(frame, "hospital", "died")
        with pytest.raises(MetamedValueError, match=r"'age_years' holds 1e\+308"):
            Preprocessor(schema).fit(frame)
        fitted = Preprocessor(schema).fit(_site_table())
        with pytest.raises(MetamedValueError, match=r"'age_years' holds 1e\+308"):
            fitted.transform(frame)
        # In range in the table but beyond float32 once scaled by a tiny spread.
        tiny_spread = _site_table().assign(age_years=lambda t: 1.0 + 1e-10 * (t.index % 2))
        near = Preprocessor(schema).fit(tiny_spread)
        with pytest.raises(MetamedValueError, match="standard deviations"):
            near.transform(tiny_spread.assign(age_years=1e30))


# -- wrong argument types in the Python API ----------------------------------------------
@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: cohort_from_table(c.frame.to_dict("list"), "hospital", "died"), "table"),
        (lambda c: cohort_from_table([1, 2], "hospital", "died"), "table"),
        (lambda c: cohort_from_table(c.frame, "hospital", ["died"]), "outcome_col"),
        (lambda c: load_table(3), "path"),
        (lambda c: infer_schema(c.frame.values, "hospital", "died"), "frame"),
        (lambda c: TaskSet(c.frame, "hospital"), "cohort"),
        (lambda c: TaskSet("icu.csv"), "cohort"),
        (lambda c: make_tasks(c, ["a"], Preprocessor(c.schema).fit(c.frame)), "taskset"),
        (lambda c: make_tasks(TaskSet(c), ["a"], "prep"), "preprocessor"),
        (lambda c: make_tasks(TaskSet(c), 3, Preprocessor(c.schema).fit(c.frame)), "names"),
        (lambda c: Preprocessor(c.schema).fit(c.frame.values), "frame"),
        (lambda c: Preprocessor(c.schema).fit(c.frame.to_dict("list")), "frame"),
        (lambda c: Preprocessor("died").fit(c.frame), "schema"),
    ],
)
def test_wrong_argument_types_raise_metamed_errors_naming_the_argument(call, argument) -> None:
    cohort = cohort_from_table(_site_table(), "hospital", "died")
    with pytest.raises(MetamedTypeError, match=argument):
        call(cohort)
