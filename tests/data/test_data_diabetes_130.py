"""Diabetes-130 loader: a self-made fixture (no data needed) and the real file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import diabetes_130 as d130
from metamed.data.preprocess import Preprocessor
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet

IDS_MAPPING = """admission_type_id,description
1,Emergency
3,Elective
6,NULL
,
discharge_disposition_id,description
1,Discharged to home
11,Expired
13,Hospice / home
18,NULL
,
admission_source_id,description
1, Physician Referral
7, Emergency Room
17,NULL
"""


def _load(folder: Path, **options: object):
    spec = get_source("diabetes-130")
    return spec.loader(folder, **spec.resolve_options(options))


def _raw() -> pd.DataFrame:
    """Six encounters of four patients, each carrying one of the loader's rules."""
    n = 6
    raw: dict[str, list] = {col: ["No"] * n for col in d130.DIABETES_DRUGS}
    raw.update({col: [1] * n for col in d130.COUNTS})
    raw.update(
        {
            # patient 10: two encounters under two diagnoses -> only the first (id 1) counts;
            # patient 20: first stay ended in death (id 2) -> the later one (id 5) counts;
            # patient 30: no primary diagnosis (id 3), then hospice (id 6) -> not in the cohort;
            # patient 40: one encounter.
            "encounter_id": [1, 2, 3, 4, 5, 6],
            "patient_nbr": [10, 20, 30, 40, 20, 30],
            "race": ["Caucasian", "?", "Asian", "AfricanAmerican", "Caucasian", "Asian"],
            "gender": ["Female", "Male", "Male", "Unknown/Invalid", "Male", "Male"],
            "age": ["[70-80)", "[50-60)", "[0-10)", "[90-100)", "[50-60)", "[0-10)"],
            "admission_type_id": [1, 1, 3, 6, 3, 1],
            "discharge_disposition_id": [1, 11, 1, 18, 1, 13],
            "admission_source_id": [7, 7, 1, 17, 1, 7],
            "diag_1": ["250.83", "428", "?", "8", "V57", "414"],
            "diag_2": ["38.9", "?", "250", "V45.81", "428.0", "?"],
            "diag_3": ["428", "?", "?", "E849.7", "428.0", "?"],
            "max_glu_serum": ["None", ">300", "None", "Norm", "None", "None"],
            "A1Cresult": [">8", "None", "None", "None", "Norm", "None"],
            "change": ["Ch", "No", "No", "Ch", "No", "No"],
            "diabetesMed": ["Yes", "No", "No", "Yes", "Yes", "No"],
            "readmitted": ["<30", "NO", ">30", "NO", ">30", "<30"],
        }
    )
    raw["insulin"] = ["Up", "Steady", "No", "Down", "No", "No"]
    later = pd.DataFrame(raw).iloc[[0]].assign(encounter_id=7, diag_1="486", readmitted="NO")
    return pd.concat([pd.DataFrame(raw), later], ignore_index=True)[list(d130.RAW_COLUMNS)]


def _fixture(folder: Path, raw: pd.DataFrame | None = None) -> Path:
    (raw if raw is not None else _raw()).to_csv(folder / d130.DATA_FILE, index=False)
    (folder / d130.IDS_FILE).write_text(IDS_MAPPING)
    return folder


def test_fixture_one_eligible_encounter_per_patient(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path))
    frame = cohort.frame
    # Patient 10's later encounter (486) is gone; patient 20's death is not eligible, its
    # later stay (V57) is; patient 30 has no eligible encounter; rows in encounter order.
    assert frame["patient_nbr"].tolist() == [10, 40, 20]
    assert frame["diag_1_category"].tolist() == ["250", "008", "V57"]
    assert frame["readmitted_30d"].tolist() == [1, 0, 0]
    assert cohort.schema.group == ("diag_1_category", "patient_nbr")
    assert cohort.schema.codesets == ("secondary_diagnoses",)


def test_fixture_cleaning_rules(tmp_path: Path) -> None:
    frame = _load(_fixture(tmp_path)).frame
    # Leading zeros restored, diag_2 and diag_3 joined (one copy of a repeated code).
    assert frame["secondary_diagnoses"].tolist() == ["038.9;428", "E849.7;V45.81", "428.0"]
    assert frame["age_years"].tolist() == [75.0, 95.0, 55.0]
    assert frame["gender"].isna().tolist() == [False, True, False]
    assert frame["admission_type"].tolist()[0] == "Emergency" and pd.isna(
        frame["admission_type"][1]
    )
    assert frame["admission_source"].tolist()[0] == "Emergency Room"
    assert pd.isna(frame["admission_source"][1])  # NULL says nothing: missing
    assert frame["max_glu_serum"].tolist() == [d130.NOT_MEASURED, "Norm", d130.NOT_MEASURED]
    assert frame["change"].tolist() == [1.0, 1.0, 0.0]
    assert frame["diabetesMed"].tolist() == [1.0, 1.0, 1.0]
    assert frame["insulin"].tolist() == ["Up", "Down", "No"]


def test_fixture_chapter_tasks(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path), task="icd9_chapter")
    assert cohort.frame["diag_1_chapter"].tolist() == [
        "240-279 endocrine, nutritional, metabolic, immunity",
        "001-139 infectious and parasitic",
        "V01-V91 factors influencing health status (V codes)",
    ]
    assert cohort.schema.group == ("diag_1_chapter", "patient_nbr")
    assert "diag_1_category" not in cohort.frame.columns


def test_fixture_bad_values_are_one_clear_error(tmp_path: Path) -> None:
    raw = _raw()
    raw.loc[0, "diag_2"] = "I10"
    with pytest.raises(MetamedValueError, match="'diag_2' holds 'I10'.*not an ICD-9-CM"):
        _load(_fixture(tmp_path, raw))
    raw = _raw()
    raw.loc[0, "readmitted"] = "YES"
    with pytest.raises(MetamedValueError, match="'readmitted' holds \\['YES'\\]"):
        _load(_fixture(tmp_path, raw))
    raw = _raw()
    raw.loc[0, "admission_source_id"] = 99
    with pytest.raises(MetamedValueError, match="'admission_source_id' holds id\\(s\\) \\[99\\]"):
        _load(_fixture(tmp_path, raw))
    with pytest.raises(MetamedValueError, match="lacks the column"):
        _load(_fixture(tmp_path, _raw().drop(columns="A1Cresult")))


def test_options_are_validated() -> None:
    with pytest.raises(
        MetamedValueError, match="task='icd9_chapters'.*Did you mean 'icd9_chapter'"
    ):
        load_dataset("diabetes-130", "/nonexistent", task="icd9_chapters")


# -- the real file (METAMED_DATA_DIR) --------------------------------------------------


@pytest.fixture(scope="module")
def diabetes_dir(need_dataset) -> Path:
    return need_dataset("diabetes-130-us-hospitals")


@pytest.fixture(scope="module")
def raw(diabetes_dir: Path) -> pd.DataFrame:
    return pd.read_csv(
        diabetes_dir / d130.DATA_FILE, keep_default_na=False, na_values=["?"], low_memory=False
    )


@pytest.fixture(scope="module")
def timed_cohort(diabetes_dir: Path):
    start = time.perf_counter()
    cohort = load_dataset("diabetes-130", diabetes_dir)
    return cohort, time.perf_counter() - start


def test_raw_counts_match_source_md(raw: pd.DataFrame) -> None:
    # SOURCE.md: 101,766 encounters of 71,518 patients; NO 54,864, >30 35,545, <30 11,357.
    assert len(raw) == 101_766 and raw["patient_nbr"].nunique() == 71_518
    assert raw["readmitted"].value_counts().to_dict() == {
        "NO": 54_864,
        ">30": 35_545,
        "<30": 11_357,
    }


def test_not_eligible_dispositions_are_expired_and_hospice(diabetes_dir: Path) -> None:
    labels = d130.read_id_labels(diabetes_dir / d130.IDS_FILE)["discharge_disposition_id"]
    ended = sorted(
        i for i, text in labels.items() if any(w in text for w in d130.NOT_ELIGIBLE_WORDS)
    )
    assert ended == [11, 13, 14, 19, 20, 21]


def test_cohort_counts_and_prevalence(timed_cohort, raw: pd.DataFrame) -> None:
    cohort, seconds = timed_cohort
    frame = cohort.frame
    dispositions = raw["discharge_disposition_id"]
    eligible = raw[~dispositions.isin([11, 13, 14, 19, 20, 21]) & raw["diag_1"].notna()]
    # One row per patient with an eligible encounter: 69,982 of the 71,518.
    assert len(frame) == eligible["patient_nbr"].nunique() == 69_982
    assert frame["patient_nbr"].is_unique
    assert int(frame["readmitted_30d"].sum()) == 6_283  # 9.0 %, against 11.2 % of all encounters
    assert abs(frame["readmitted_30d"].mean() - 0.0898) < 0.0005
    assert abs((raw["readmitted"] == "<30").mean() - 0.1116) < 0.0005
    sizes = frame["diag_1_category"].value_counts()
    assert len(sizes) == 661 and sizes.index[0] == "250" and sizes.iloc[0] == 5_748
    assert (sizes >= 200).sum() == 59 and (sizes < 20).sum() == 406
    assert frame["secondary_diagnoses"].notna().sum() > 0.99 * len(frame)
    assert seconds < 60, f"loading took {seconds:.1f} s (about 3 s on a quiet 2-core machine)"


def test_no_patient_in_two_tasks_or_on_both_sides_of_a_split(timed_cohort) -> None:
    cohort, _ = timed_cohort
    tasks_per_patient = cohort.frame.groupby("patient_nbr")["diag_1_category"].nunique()
    assert tasks_per_patient.max() == 1
    taskset = TaskSet(cohort)
    split = taskset.random_split(test_fraction=0.25, val_fraction=0.1, seed=0)
    sides = [
        set(taskset.frames(part)["patient_nbr"]) for part in (split.train, split.val, split.test)
    ]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def test_no_leaking_column_among_features(timed_cohort, diabetes_dir: Path) -> None:
    cohort, _ = timed_cohort
    features = set(cohort.schema.features)
    for col in (*d130.DIABETES_LEAKING_COLUMNS, "discharge_disposition_id", "encounter_id"):
        assert col not in features and col not in cohort.frame.columns, col
    assert not {"diag_1", "diag_1_category", "patient_nbr"} & features
    chapters = load_dataset("diabetes-130", diabetes_dir, task="icd9_chapter")
    assert chapters.frame["diag_1_chapter"].nunique() == 18
    assert len(chapters.frame) == len(cohort.frame)


def test_real_codes_roll_up_with_a_train_only_vocabulary(timed_cohort) -> None:
    cohort, _ = timed_cohort
    taskset = TaskSet(cohort)
    sizes = taskset.summary().set_index("task")["n"]
    rare = sorted(sizes[sizes < 20].index)  # the rare cohorts are held out
    train = [t for t in taskset.names if t not in rare]
    prep = Preprocessor(
        cohort.schema,
        max_codes=200,
        min_code_count=20,
        code_levels=("icd9_category", "icd9_chapter"),
    ).fit(taskset.frames(train))
    assert len(prep.codes_["secondary_diagnoses"]) == 200
    held_out = prep.count_unknown_codes(taskset.frames(rare))["secondary_diagnoses"]
    X = prep.transform(taskset.frames(rare))
    assert X[:, -1].sum() == held_out["rows"] > 0 and np.isfinite(X).all()
