"""The service's fast path for JSON rows gives exactly the pandas path's answers and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from metamed.data.cohort import Schema
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedError
from metamed.learners.pipeline import feature_schema
from metamed.serve.encoding import RowEncoder
from metamed.serve.validation import InputSchema


def training_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Every kind of column: scaled, missing-at-fit (indicator), a 0/1 flag, text and
    integer-coded categories (one with missing cells at fit), a code set."""
    rng = np.random.default_rng(seed)
    lactate = np.abs(rng.normal(2, 1, n)).round(1)
    lactate[rng.random(n) < 0.1] = np.nan
    ward = rng.choice(["icu", "medical", "surgical", None], n, p=[0.3, 0.3, 0.3, 0.1])
    return pd.DataFrame(
        {
            "age": rng.normal(62, 12, n).round(),
            "lactate": lactate,
            "smoker": rng.integers(0, 2, n),
            "ward": ward,
            "stage": rng.integers(1, 4, n),
            "codes": rng.choice(["250.1;401", "401", "", "V58;250.1", None], n),
            "died": rng.integers(0, 2, n),
        }
    )


@pytest.fixture(scope="module")
def encoder() -> RowEncoder:
    schema = Schema(
        outcome="died",
        numeric=("age", "lactate", "smoker"),
        categorical=("ward", "stage"),
        codesets=("codes",),
    )
    prep = Preprocessor(schema).fit(training_table())
    inputs = InputSchema(feature_schema(prep), {"column": "died", "kind": "binary"}, max_rows=50)
    return RowEncoder(inputs, prep)


def slow(encoder: RowEncoder, records):
    return encoder._pre.transform(encoder.schema.check_records(records))


def answer(encode, records):
    """The matrix, or the error's class, message, field and row."""
    try:
        return ("ok", encode(records).tobytes())
    except MetamedError as error:
        where = (getattr(error, "field", None), getattr(error, "row", None))
        return ("error", type(error).__name__, str(error), where)


ODD_VALUES = [
    None, 0, -1, 1, 3, 2.5, -0.0, 1e-300, 400, -400, 1e300, 2**53, 2**53 + 1, 10**400,
    math.nan, math.inf, -math.inf, True, False, "", "icu", "ICU", "1", "2", "3.0",
    "250.1;401", [], {}, [1], "<missing>", "<other>", 1.0, 2.0, 3.0, 1.5,
]  # fmt: skip


def random_rows(rng: np.random.Generator, n: int) -> list[dict]:
    table = training_table(n, seed=int(rng.integers(1 << 30))).drop(columns="died")
    rows = json.loads(table.to_json(orient="records"))
    for row in rows:  # integers as JSON integers sometimes, floats other times
        if rng.random() < 0.5 and row["age"] is not None:
            row["age"] = int(row["age"])
        if rng.random() < 0.3:
            row["stage"] = float(row["stage"])
    return rows


def malformed(rng: np.random.Generator, rows: list[dict]) -> object:
    """``rows`` broken one of many ways (or left alone)."""
    rows = [dict(r) for r in rows]
    row = rows[int(rng.integers(len(rows)))]
    what = int(rng.integers(9))
    column = str(rng.choice(list(row)))
    if what <= 3:
        row[column] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    elif what == 4:
        del row[column]
    elif what == 5:
        row["agee"] = 1
    elif what == 6:
        rows[rows.index(row)] = [None, 1, "row", [1, 2]][int(rng.integers(4))]
    elif what == 7:
        row[column] = float(row[column]) * 1e4 if isinstance(row[column], (int, float)) else None
    return rows


def test_valid_rows_take_the_fast_path_and_encode_exactly_as_pandas(encoder):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        for _ in range(10):
            rows = random_rows(rng, n)
            fast = encoder._fast(rows)  # raises if the fast path declined these rows
            np.testing.assert_array_equal(fast, slow(encoder, rows))
            assert fast.dtype == np.float32


def test_malformed_rows_get_the_pandas_paths_answer_or_error(encoder):
    rng = np.random.default_rng(1)
    errors = 0
    for _ in range(300):
        rows = malformed(rng, random_rows(rng, int(rng.integers(1, 6))))
        expected = answer(lambda r: slow(encoder, r), rows)
        assert answer(encoder.encode, rows) == expected, rows
        errors += expected[0] == "error"
    assert errors > 100  # most draws broke a row: the errors were compared, not just matrices
    for rows in ([], [{}] * 51, "rows", [None], {"age": 1}):
        assert answer(encoder.encode, rows) == answer(lambda r: slow(encoder, r), rows)
