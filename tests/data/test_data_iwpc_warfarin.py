"""IWPC warfarin loader: a self-made fixture (no data needed) and the real spreadsheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import iwpc_warfarin as iwpc
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet


def _load(folder: Path, **options: object):
    spec = get_source("iwpc-warfarin")
    return spec.loader(folder, **spec.resolve_options(options))


def _raw() -> pd.DataFrame:
    """Five patients: four reached a stable dose, one did not."""
    n = 5
    raw = {col: [0.0] * n for col in iwpc.IWPC_RENAMES}
    raw.update(
        {
            "Project Site": [1, 1, 2, 2, 3],
            "Race (OMB)": ["White", "Asian", "Unknown", "White", "Asian"],
            "Age": ["60 - 69", "90+", None, "10 - 19", "30 - 39"],
            "Gender": ["male", "female", "male", None, "female"],
            "Ethnicity (OMB)": [
                "not Hispanic or Latino",
                "Not Hispanic or Latino",
                "Unknown",
                "Hispanic or Latino",
                "Unknown",
            ],
            "Simvastatin (Zocor)": ["0", "YES", None, "NO", "1"],
            "Indication for Warfarin Treatment": ["3; 8", "1 or 2", None, "1,2", "4"],
            "CYP2C9 consensus": ["*1/*1", "*1/*3", None, "*1/*2", "*1/*1"],
            "Therapeutic Dose of Warfarin": [35.0, 17.5, 42.0, 28.0, np.nan],
            "INR on Reported Therapeutic Dose of Warfarin": [2.5, 2.4, 2.2, 3.0, 2.1],
        }
    )
    frame = pd.DataFrame(raw)
    frame[iwpc.STABLE] = [1, 1, 1, 0, 1]
    return frame


def test_fixture_cleaning_rules(tmp_path: Path) -> None:
    _raw().to_csv(tmp_path / iwpc.FILE, index=False)
    cohort = _load(tmp_path)
    frame = cohort.frame
    # Not stable (row 4) and no dose (row 5) are outside the IWPC cohort.
    assert frame["therapeutic_dose_mg_week"].tolist() == [35.0, 17.5, 42.0]
    assert cohort.schema.outcome_type == "numeric" and cohort.schema.group == ("project_site",)
    assert frame["age_decades"].tolist()[:2] == [6.0, 9.0] and np.isnan(frame["age_decades"][2])
    assert frame["indication"].tolist()[:2] == ["afib_flutter;other", "dvt;pe"]
    assert frame["simvastatin"].tolist()[:2] == [0.0, 1.0]
    assert frame["ethnicity"].tolist()[:2] == ["not Hispanic or Latino"] * 2
    for col in iwpc.IWPC_LEAKING_COLUMNS:
        assert col not in frame.columns and col not in cohort.schema.features
    assert "race" in cohort.schema.categorical
    by_race = _load(tmp_path, task="race")
    assert by_race.frame["race"].tolist() == ["White", "Asian"]  # unknown race is no population
    assert (
        by_race.schema.group == ("race", "project_site") and "race" not in by_race.schema.features
    )


def test_fixture_unknown_codes_are_refused(tmp_path: Path) -> None:
    _raw().assign(**{"Indication for Warfarin Treatment": "3; 9"}).to_csv(
        tmp_path / iwpc.FILE, index=False
    )
    with pytest.raises(MetamedValueError, match=r"unexpected code\(s\) \['9'\]"):
        _load(tmp_path)
    _raw().assign(Age="60-69").to_csv(tmp_path / iwpc.FILE, index=False)
    with pytest.raises(MetamedValueError, match="column 'Age': unexpected code"):
        _load(tmp_path)


def test_options_are_validated() -> None:
    with pytest.raises(MetamedValueError, match="task='sites'.*Did you mean 'site'"):
        load_dataset("iwpc-warfarin", "/nonexistent", task="sites")


# -- the real spreadsheet (METAMED_DATA_DIR) -------------------------------------------


@pytest.fixture(scope="module")
def warfarin(need_dataset):
    return load_dataset("iwpc-warfarin", need_dataset("iwpc-warfarin"))


def test_counts_and_dose(warfarin) -> None:
    # SOURCE.md: 6,256 patients, 5,934 reached a stable dose, 22 sites of 63-828 patients,
    # median dose 28 mg/week; site means from about 19-20 (sites 3, 4) to 45 (site 11).
    frame = warfarin.frame
    assert len(frame) == 5919  # the 5,934 stable ones, less 15 without a recorded dose
    sizes = TaskSet(warfarin).summary().set_index("task")["n"]
    assert len(sizes) == 22 and sizes.min() == 63 and sizes.max() == 828
    assert frame["therapeutic_dose_mg_week"].median() == 28.0
    means = frame.groupby("project_site")["therapeutic_dose_mg_week"].mean()
    assert 19 <= means[3] <= 20.5 and 19 <= means[4] <= 21.5 and 44 <= means[11] <= 45.5
    assert means.idxmax() == 11 and set(means.nsmallest(2).index) == {3, 4}


def test_no_leak_and_clean_codes(warfarin) -> None:
    schema = warfarin.schema
    for col in (*iwpc.IWPC_LEAKING_COLUMNS, "therapeutic_dose_mg_week", "project_site"):
        assert col not in schema.features, col
    assert "INR on Reported Therapeutic Dose of Warfarin" not in warfarin.frame.columns
    codes = {c for cell in warfarin.frame["indication"].dropna() for c in cell.split(";")}
    assert codes == set(iwpc.INDICATION_LABELS.values())
    assert set(warfarin.frame["simvastatin"].dropna()) == {0.0, 1.0}
    assert warfarin.frame["ethnicity"].nunique() == 3
