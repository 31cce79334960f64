"""PhysioNet 2012 loader: a self-made fixture (no data needed) and the real sets A and B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import physionet_2012 as physionet
from metamed.data.preprocess import Preprocessor
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet


def _load(folder: Path, **options: object):
    spec = get_source("physionet-2012")
    return spec.loader(folder, **spec.resolve_options(options))


def _set(seed: int) -> pd.DataFrame:
    """Four stays, one per ICU type (CCU, CSRU, SICU, MICU)."""
    return pd.DataFrame(
        {
            "recordid": [seed + i for i in range(4)],
            "SAPS-I": [10, -1, 20, 15],
            "SOFA": [3, 4, -1, 8],
            "Length_of_stay": [5, 9, 3, 12],
            "Survival": [-1, 7, -1, 2],
            "In-hospital_death": [0, 1, 0, 1],
            "Age": [70.0, 55.0, -1.0, 80.0],
            "Gender": [1.0, 0.0, np.nan, 1.0],
            "Height": [170.0, 3960.0, np.nan, 160.0],
            "Weight": [80.0, 70.0, 90.0, -1.0],
            "CCU": [1, 0, 0, 0],
            "CSRU": [0, 1, 0, 0],
            "SICU": [0, 0, 1, 0],
            "HR_first": [80.0, 90.0, 100.0, 110.0],
            "MechVentStartTime": [np.nan, 30.0, 60.0, np.nan],
            "UrineOutputSum": [np.nan, 12.0, 3.0, np.nan],
        }
    )


def _fixture(folder: Path) -> Path:
    for name, seed in (("a", 100), ("b", 200)):
        _set(seed).to_csv(folder / physionet.PHYSIONET_2012_SETS[name], index=False)
    return folder


def test_fixture_cleaning_rules(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path))
    frame, schema = cohort.frame, cohort.schema
    assert len(frame) == 8 and frame["set"].tolist() == ["a"] * 4 + ["b"] * 4
    assert frame["icu_type"].tolist()[:4] == ["CCU", "CSRU", "SICU", "MICU"]
    assert schema.group == ("icu_type", "set") and schema.reference == ("SAPS-I", "SOFA")
    assert frame["in_hospital_death"].tolist()[:4] == [0, 1, 0, 1]
    # -1 = not computed / not recorded; a 39.6 m height is a unit error.
    assert np.isnan(frame["SAPS-I"][1]) and np.isnan(frame["SOFA"][2])
    assert (
        np.isnan(frame["Age"][2]) and np.isnan(frame["Weight"][3]) and np.isnan(frame["Height"][1])
    )
    # The mislabelled ventilation count carries its true name.
    assert "UrineOutputSum" not in frame and frame["MechVentRecordCount"][1] == 12.0
    for col in (*physionet.PHYSIONET_2012_LEAKING_COLUMNS, "recordid", "CCU", "CSRU", "SICU"):
        assert col not in frame.columns and col not in schema.features
    only_b = _load(tmp_path, sets=["b"])
    assert only_b.frame["set"].unique().tolist() == ["b"]


def test_fixture_bad_icu_type_is_refused(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    _set(100).assign(CCU=[1, 1, 0, 0]).to_csv(
        folder / physionet.PHYSIONET_2012_SETS["a"], index=False
    )
    with pytest.raises(MetamedValueError, match="at most one 1 per stay"):
        _load(folder)


def test_options_are_validated() -> None:
    with pytest.raises(MetamedValueError, match="sets='c' is not one of 'a', 'b'"):
        load_dataset("physionet-2012", "/nonexistent", sets=["a", "c"])
    with pytest.raises(MetamedValueError, match="at least one"):
        load_dataset("physionet-2012", "/nonexistent", sets=[])


# -- the real sets (METAMED_DATA_DIR) --------------------------------------------------

# SOURCE.md: 4,000 stays per set; death 13.8 % in A, 14.2 % in B; A by ICU type.
SET_A_ICU_COUNTS = {"MICU": 1481, "SICU": 1068, "CSRU": 874, "CCU": 577}


@pytest.fixture(scope="module")
def physionet_cohort(need_dataset):
    return load_dataset("physionet-2012", need_dataset("physionet-challenge-2012"))


def test_counts_and_prevalence(physionet_cohort) -> None:
    frame = physionet_cohort.frame
    assert frame["set"].value_counts().to_dict() == {"a": 4000, "b": 4000}
    death = frame.groupby("set")["in_hospital_death"].mean()
    assert abs(death["a"] - 0.138) < 0.001 and abs(death["b"] - 0.142) < 0.001
    set_a = frame[frame["set"] == "a"]
    assert set_a["icu_type"].value_counts().to_dict() == SET_A_ICU_COUNTS
    by_icu = set_a.groupby("icu_type")["in_hospital_death"].mean()
    assert abs(by_icu["CSRU"] - 0.049) < 0.001 and abs(by_icu["MICU"] - 0.186) < 0.001
    assert TaskSet(physionet_cohort).names == ["CCU", "CSRU", "MICU", "SICU"]


def test_no_leak_and_scores_are_references(physionet_cohort) -> None:
    schema = physionet_cohort.schema
    for col in (*physionet.PHYSIONET_2012_LEAKING_COLUMNS, "In-hospital_death", "recordid"):
        assert col not in schema.features and col not in physionet_cohort.frame.columns, col
    assert not {"SAPS-I", "SOFA", "icu_type", "set"} & set(schema.features)
    assert len(schema.features) == 111
    pre = Preprocessor(schema).fit(physionet_cohort.frame.drop(columns=list(schema.reference)))
    assert not [n for n in pre.feature_names_ if n.startswith(("SAPS", "SOFA"))]


def test_minus_one_became_missing(physionet_cohort, need_dataset) -> None:
    folder = need_dataset("physionet-challenge-2012")
    raw = pd.concat(pd.read_csv(folder / f) for f in physionet.PHYSIONET_2012_SETS.values())
    for col in ("SAPS-I", "SOFA"):
        assert not (physionet_cohort.frame[col] == -1).any()
        assert physionet_cohort.frame[col].isna().sum() == int((raw[col] == -1).sum())
    assert physionet_cohort.frame["Height"].max() <= 250
    assert physionet_cohort.frame["Height"].isna().sum() == int(raw["Height"].isna().sum()) + 12
