"""Bring-your-own-table: reading files, schema rules and one clear error per bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.preprocess import Preprocessor
from metamed.data.sources import sha256_file
from metamed.data.table import cohort_from_table, infer_schema, load_table
from metamed.errors import (
    DataNotFoundError,
    MetamedError,
    MetamedTypeError,
    MetamedValueError,
    UnknownNameError,
)


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
    assert schema.outcome_type == "binary"
    assert schema.units == {"lactate_mmol_l": "mmol/L"}
    numeric = infer_schema(
        _frame().assign(died=[0.5, 1, 2, 0, 1, 0]),
        "hospital",
        "died",
        drop_cols=["patient_id", "dx"],
    )
    assert numeric.outcome_type == "numeric"
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
    assert cohort.schema.outcome_type == "binary"
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
