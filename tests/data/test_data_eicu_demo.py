"""eICU demo loader: a self-made fixture (no data needed) and the real tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import eicu_demo
from metamed.data.preprocess import Preprocessor
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError, UnknownNameError
from metamed.tasks import TaskSet

KEY = "patientunitstayid"


def _load(folder: Path, **options: object):
    spec = get_source("eicu-demo")
    return spec.loader(folder, **spec.resolve_options(options))


def _fixture(folder: Path) -> Path:
    """Four stays at three hospitals, each carrying one of the loader's cleaning cases."""
    patient = pd.DataFrame(
        {
            KEY: [1, 2, 3, 4],
            "uniquepid": ["p1", "p2", "p3", "p4"],
            "hospitalid": [10, 10, 20, 30],
            "gender": ["Male", "Female", "Male", None],
            "age": ["> 89", "60", None, "45"],
            "ethnicity": ["Caucasian", "Asian", None, "Caucasian"],
            "apacheadmissiondx": ["Sepsis", None, "CHF", "Sepsis"],
            "admissionheight": [170.0, 600.0, 160.0, 0.3],
            "admissionweight": [80.0, 0.5, 70.0, 60.0],
            "hospitaladmitoffset": [-120, 30, 0, -60],
            "hospitaladmitsource": ["Floor", None, "Floor", "Floor"],
            "unittype": ["MICU", "SICU", "MICU", "MICU"],
            "unitadmitsource": ["Floor", "Floor", "Emergency Department", "Floor"],
            "unitvisitnumber": [1, 1, 2, 1],
            "unitstaytype": ["admit", "admit", "readmit", "admit"],
            "hospitaldischargestatus": ["Expired", "Alive", None, "Alive"],
            "unitdischargeoffset": [5000, 100, 4321, 4320],
        }
    )
    hospital = pd.DataFrame(
        {
            "hospitalid": [10, 20, 30],
            "numbedscategory": ["<100", None, ">= 500"],
            "teachingstatus": [True, False, False],
            "region": ["South", "West", None],
        }
    )
    aps = pd.DataFrame({KEY: [1, 3, 4], **{c: [1.0, 2.0, 3.0] for c in eicu_demo.APSVAR_COLUMNS}})
    aps["ph"] = [-1.0, 7.3, -1.0]
    pred = pd.DataFrame({KEY: [1, 3, 4], **{c: [0, 1, 0] for c in eicu_demo.PREDVAR_COLUMNS}})
    pred["ejectfx"] = [-1, 40, 55]
    pred["amilocation"] = [-1, 2, -1]
    result = pd.DataFrame(
        {
            KEY: [1, 1, 4, 4],
            "apacheversion": ["IV", "IVa", "IV", "IVa"],
            **{c: [0.9, 0.3, 0.2, -1.0] for c in eicu_demo.REFERENCE_SOURCES},
        }
    )
    for name, table in [
        ("patient", patient),
        ("hospital", hospital),
        ("apacheapsvar", aps),
        ("apachepredvar", pred),
        ("apachepatientresult", result),
    ]:
        table.to_csv(folder / f"{name}.csv.gz", index=False)
    return folder


def test_fixture_cleaning_rules(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path))
    frame = cohort.frame
    # Stay 3 has no discharge status: it cannot be scored for hospital mortality.
    assert frame["hospital_mortality"].tolist() == [1, 0, 0]
    assert frame["age"].tolist()[:2] == [90.0, 60.0]  # "> 89" is 90
    assert np.isnan(frame["admissionheight"][1]) and np.isnan(frame["admissionweight"][1])
    assert np.isnan(frame["admissionheight"][2])  # 0.3 cm
    # -1 = not measured; stays without APACHE rows have no APACHE values at all.
    assert np.isnan(frame["ph"][0]) and np.isnan(frame["ph"][1]) and np.isnan(frame["ph"][2])
    assert np.isnan(frame["ejectfx"][0]) and frame["ejectfx"][2] == 55
    assert frame["hours_in_hospital_before_icu"].tolist()[0] == 2.0
    assert np.isnan(frame["hours_in_hospital_before_icu"][1])  # admitted after the ICU stay began
    # References come from the APACHE IVa rows only; -1 (non-predictive) is missing.
    assert frame["apache_iva_pred_hospital_mortality"][0] == 0.3
    assert np.isnan(frame["apache_iva_pred_hospital_mortality"][2])
    assert cohort.schema.group == ("hospitalid", "uniquepid")
    assert {"region", "unittype"} <= set(cohort.schema.categorical)


def test_fixture_outcomes_and_tasks(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    los = _load(folder, outcome="icu_stay_over_3_days")
    assert los.frame["icu_stay_over_3_days"].tolist() == [1, 0, 1, 0]  # > 4320 min, not >=
    by_region = _load(folder, outcome="icu_stay_over_3_days", task="region")
    # Hospital 30 has no region: its stays belong to no region task.
    assert by_region.frame["region"].tolist() == ["South", "South", "West"]
    assert by_region.schema.group[0] == "region" and "region" not in by_region.schema.features
    by_unit = _load(folder, task="unit_type")
    assert by_unit.schema.group[0] == "unittype" and "unittype" not in by_unit.schema.features
    assert "region" in by_unit.schema.features


def test_fixture_missing_column_is_one_clear_error(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    pd.read_csv(folder / "hospital.csv.gz").drop(columns="region").to_csv(
        folder / "hospital.csv.gz", index=False
    )
    with pytest.raises(MetamedValueError, match=r"hospital\.csv\.gz lacks.*'region'"):
        _load(folder)


def test_options_are_validated() -> None:
    with pytest.raises(
        MetamedValueError, match="outcome='mortality'.*Did you mean 'hospital_mortality'"
    ):
        load_dataset("eicu-demo", "/nonexistent", outcome="mortality")
    with pytest.raises(MetamedValueError, match="task='hospitals'.*Did you mean 'hospital'"):
        load_dataset("eicu-demo", "/nonexistent", task="hospitals")
    with pytest.raises(UnknownNameError, match="no option 'tasks'. Did you mean 'task'"):
        load_dataset("eicu-demo", "/nonexistent", tasks="region")


# -- the real demo tables (METAMED_DATA_DIR) -------------------------------------------


@pytest.fixture(scope="module")
def eicu_dir(need_dataset) -> Path:
    return need_dataset("eicu-crd-demo")


@pytest.fixture(scope="module")
def mortality(eicu_dir: Path):
    return load_dataset("eicu-demo", eicu_dir)


def test_counts_and_prevalence(mortality, eicu_dir: Path) -> None:
    # SOURCE.md: 2,520 stays at 186 hospitals, 10-40 stays each, about 8.5 % expired.
    # 28 stays have no discharge status and are left out of the mortality cohort.
    frame = mortality.frame
    assert len(frame) == 2492 and frame["hospitalid"].nunique() == 186
    assert int(frame["hospital_mortality"].sum()) == 212
    assert abs(frame["hospital_mortality"].mean() - 0.085) < 0.001
    sizes = TaskSet(mortality).summary()["n"]
    assert (sizes >= 20).sum() == 11  # the issue: only 11 hospitals have 20 stays or more
    los = load_dataset("eicu-demo", eicu_dir, outcome="icu_stay_over_3_days")
    assert len(los.frame) == 2520 and int(los.frame["icu_stay_over_3_days"].sum()) == 549
    assert abs(los.frame["icu_stay_over_3_days"].mean() - 0.22) < 0.005
    regions = load_dataset("eicu-demo", eicu_dir, task="region")
    assert sorted(regions.frame["region"].unique()) == ["Midwest", "Northeast", "South", "West"]
    # 210 stays (209 with a discharge status) are at the 18 hospitals without a region.
    assert len(regions.frame) == 2492 - 209 and regions.frame["hospitalid"].nunique() == 168


def test_no_leaking_column_and_scores_are_references(mortality, eicu_dir: Path) -> None:
    features = set(mortality.schema.features)
    for col in eicu_demo.EICU_LEAKING_COLUMNS:
        assert col not in features and col not in mortality.frame.columns, col
    for outcome in eicu_demo.EICU_OUTCOMES:
        cohort = load_dataset("eicu-demo", eicu_dir, outcome=outcome)
        assert not set(eicu_demo.EICU_OUTCOMES) & set(cohort.schema.features)
    assert mortality.schema.reference == eicu_demo.EICU_REFERENCE_COLUMNS
    pre = Preprocessor(mortality.schema).fit(
        mortality.frame.drop(columns=list(mortality.schema.reference))
    )
    assert not [n for n in pre.feature_names_ if n.startswith("apache_iva")]
    # 1,838 stays were scored; APACHE IVa called 155 of them non-predictive (-1).
    assert mortality.frame["apache_iva_pred_hospital_mortality"].notna().sum() == 1838 - 155


def test_minus_one_became_missing(mortality, eicu_dir: Path) -> None:
    aps = pd.read_csv(eicu_dir / "apacheapsvar.csv.gz")
    for col in eicu_demo.APSVAR_COLUMNS + eicu_demo.PREDVAR_COLUMNS:
        values = mortality.frame[col]
        assert not (values == -1).any(), col
    # Every -1 in the raw physiology is a missing value now, and no real value was lost.
    raw = pd.read_csv(eicu_dir / "patient.csv.gz", usecols=[KEY, "hospitaldischargestatus"])
    raw = raw[raw["hospitaldischargestatus"].notna()].merge(aps, on=KEY, how="left")
    for col in ("ph", "pao2", "urine", "temperature"):
        assert mortality.frame[col].isna().sum() == int(
            (raw[col] == -1).sum() + raw[col].isna().sum()
        )
