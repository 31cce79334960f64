"""Reference columns: clinical scores kept in a cohort, never model inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema
from metamed.data.preprocess import Preprocessor
from metamed.errors import MetamedTypeError, MetamedValueError
from metamed.tasks import TaskSet, make_tasks

SCHEMA = Schema(
    outcome="died",
    numeric=("age", "hr"),
    categorical=("unit",),
    group=("site",),
    reference=("apache_risk", "sofa"),
)


def _frame(seed: int = 0, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(60, 10, n),
            "hr": rng.normal(90, 15, n),
            "unit": rng.choice(["micu", "sicu"], n),
            "site": np.repeat(["a", "b"], n // 2),
            "apache_risk": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "sofa": rng.integers(0, 20, n).astype(float),
            "died": rng.integers(0, 2, n),
        }
    )


def test_reference_columns_are_kept_but_never_features() -> None:
    cohort = Cohort("icu", _frame(), SCHEMA)
    assert set(SCHEMA.reference) <= set(cohort.frame.columns)
    assert not set(SCHEMA.reference) & set(SCHEMA.features)
    assert set(SCHEMA.reference) <= set(SCHEMA.columns)


def test_preprocessor_never_reads_reference_columns() -> None:
    frame = _frame()
    pre = Preprocessor(SCHEMA).fit(frame)
    assert not any(
        name.split("=")[0].split("__")[0] in SCHEMA.reference for name in pre.feature_names_
    )
    # Fitting and transforming without the columns works: they are never read ...
    without = frame.drop(columns=list(SCHEMA.reference))
    np.testing.assert_array_equal(
        Preprocessor(SCHEMA).fit(without).transform(without), pre.transform(frame)
    )
    # ... and scrambling them changes nothing.
    scrambled = frame.assign(apache_risk=frame["apache_risk"][::-1].to_numpy(), sofa=-frame["sofa"])
    np.testing.assert_array_equal(pre.transform(scrambled), pre.transform(frame))
    tasks = make_tasks(TaskSet(Cohort("icu", frame, SCHEMA)), ["a", "b"], pre)
    assert all(t.X.shape[1] == len(pre.feature_names_) for t in tasks)


def test_schema_round_trip_and_old_layout() -> None:
    pre = Preprocessor(SCHEMA).fit(_frame())
    assert Preprocessor.from_dict(pre.to_dict()).schema == SCHEMA
    # A schema without reference columns serialises as it did before the role existed.
    assert "reference" not in Schema(outcome="y", numeric=("x",)).to_dict()


def test_reference_role_is_checked() -> None:
    with pytest.raises(MetamedValueError, match="'sofa' is declared both numeric and reference"):
        Schema(outcome="y", numeric=("sofa",), reference=("sofa",))
    with pytest.raises(MetamedValueError, match="outcome and also declared reference"):
        Schema(outcome="y", reference=("y",))
    with pytest.raises(MetamedTypeError, match="reference column 'apache_risk' must hold numbers"):
        Cohort("icu", _frame().assign(apache_risk="high"), SCHEMA)
    with pytest.raises(MetamedValueError, match="'sofa' named in the schema is not in the table"):
        Cohort("icu", _frame().drop(columns="sofa"), SCHEMA)
