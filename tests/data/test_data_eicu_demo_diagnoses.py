"""eICU demo by diagnosis: a self-made fixture (no data needed) and the real tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import eicu_demo
from metamed.data.datasets import eicu_demo_diagnoses as dx
from metamed.data.registry import get_source, load_dataset
from metamed.tasks import TaskSet

KEY = "patientunitstayid"


def _load(folder: Path, **options: object):
    spec = get_source("eicu-demo-diagnoses")
    return spec.loader(folder, **spec.resolve_options(options))


def _fixture(folder: Path) -> Path:
    """Six stays of three patients, each carrying one of the loader's rules."""
    stays = [1, 2, 3, 4, 5, 6]
    patient = pd.DataFrame(
        {
            KEY: stays,
            # p1: stays 1 (2015) and 2 (2014) -> stay 2 is first; p2: stays 3 and 4 in one
            # year -> the lower health-system stay id (4); p3: stay 5 has no admission
            # diagnosis -> stay 6.
            "uniquepid": ["p1", "p1", "p2", "p2", "p3", "p3"],
            "hospitaldischargeyear": [2015, 2014, 2014, 2014, 2015, 2015],
            "patienthealthsystemstayid": [11, 10, 21, 20, 30, 30],
            "unitvisitnumber": [1, 1, 1, 1, 1, 2],
            "hospitalid": [10, 10, 20, 20, 20, 20],
            "gender": ["Male"] * 6,
            "age": ["60"] * 6,
            "ethnicity": ["Caucasian"] * 6,
            "apacheadmissiondx": ["Sepsis", "CHF", "Sepsis", "CHF", None, "Sepsis"],
            "admissionheight": [170.0] * 6,
            "admissionweight": [80.0] * 6,
            "hospitaladmitoffset": [-60, -120, -180, -240, -300, -360],
            "hospitaladmitsource": ["Floor"] * 6,
            "unittype": ["MICU"] * 6,
            "unitadmitsource": ["Floor"] * 6,
            "unitstaytype": ["admit"] * 6,
            "hospitaldischargestatus": ["Alive", "Expired", "Alive", "Alive", "Alive", "Expired"],
            "unitdischargeoffset": [100, 5000, 100, 100, 100, 4400],
        }
    )
    hospital = pd.DataFrame(
        {
            "hospitalid": [10, 20],
            "numbedscategory": ["<100", "<100"],
            "teachingstatus": [True, False],
            "region": ["South", "West"],
        }
    )
    aps = pd.DataFrame(
        {KEY: stays, **{c: [2.0, 3.0, 4.0, 5.0, 6.0, 7.0] for c in eicu_demo.APSVAR_COLUMNS}}
    )
    pred = pd.DataFrame({KEY: stays, **{c: [0] * 6 for c in eicu_demo.PREDVAR_COLUMNS}})
    pred["amilocation"] = -1
    result = pd.DataFrame(
        {
            KEY: stays,
            "apacheversion": ["IVa"] * 6,
            **{c: [0.1] * 6 for c in eicu_demo.REFERENCE_SOURCES},
        }
    )
    prefix = dx.PAST_HISTORY_PREFIX
    history = pd.DataFrame(
        {
            KEY: [2, 2, 2, 4],
            "pasthistoryenteredoffset": [10, -5, 2000, 30],
            "pasthistorypath": [
                prefix + "Organ Systems/Pulmonary/Asthma/asthma",
                prefix + "Organ Systems/Renal  (R)/Renal Failure/renal failure",
                prefix + "Organ Systems/Cardiovascular (R)/CHF/CHF",  # day 2: too late
                prefix + "Past History Obtain Options/No Health Problems",
            ],
        }
    )
    admission = pd.DataFrame(
        {
            KEY: [2, 2, 6],
            "admitdxenteredoffset": [5, 5, 5],
            "admitdxpath": [
                "admission diagnosis|Elective|No",
                "admission diagnosis|All Diagnosis|Non-operative|Diagnosis|Cardiovascular|CHF",
                "admission diagnosis|Elective|Yes",
            ],
        }
    )
    diagnosis = pd.DataFrame(
        {
            KEY: [2, 2, 4, 6],
            "diagnosisid": [1, 2, 3, 4],
            "diagnosisoffset": [100, 3000, 50, 10],
            "diagnosisstring": [
                "cardiovascular|shock / hypotension|septic shock",
                "renal|disorder of kidney|acute renal failure",  # day 3: not the cohort
                "pulmonary|respiratory failure|acute respiratory failure",
                "cardiovascular|arrhythmias|atrial fibrillation",
            ],
            "diagnosispriority": ["Primary", "Primary", "Major", "Primary"],
        }
    )
    for name, table in [
        ("patient", patient),
        ("hospital", hospital),
        ("apacheapsvar", aps),
        ("apachepredvar", pred),
        ("apachepatientresult", result),
        ("pasthistory", history),
        ("admissiondx", admission),
        ("diagnosis", diagnosis),
    ]:
        table.to_csv(folder / f"{name}.csv.gz", index=False)
    return folder


def test_fixture_one_stay_per_patient(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path))
    frame = cohort.frame
    assert frame["uniquepid"].tolist() == ["p1", "p2", "p3"]
    assert frame["apacheadmissiondx"].tolist() == ["CHF", "CHF", "Sepsis"]
    assert frame["hospital_mortality"].tolist() == [1, 0, 1]
    assert cohort.schema.group == ("apacheadmissiondx", "hospitalid", "uniquepid")
    features = set(cohort.schema.features)
    ordering = {"hospitaldischargeyear", "patienthealthsystemstayid", KEY}
    assert not features & {*ordering, "apacheadmissiondx", "uniquepid", "hospitalid"}


def test_fixture_code_sets_hold_the_first_day_only(tmp_path: Path) -> None:
    frame = _load(_fixture(tmp_path)).frame
    assert frame["past_history"].tolist()[:2] == [
        "Organ Systems/Pulmonary/Asthma/asthma;Organ Systems/Renal  (R)/Renal Failure/renal failure",
        "Past History Obtain Options/No Health Problems",
    ]
    assert pd.isna(frame["past_history"][2])
    # The "All Diagnosis" row restates the task (CHF): left out with this task.
    assert frame["admission_dx"].tolist()[0] == "Elective|No"
    assert pd.isna(frame["admission_dx"][1]) and frame["admission_dx"][2] == "Elective|Yes"


def test_fixture_primary_diagnosis_tasks(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    system = _load(folder, task="diagnosis_system")
    # Stay 4 has no primary diagnosis, so p2 has no cohort; stay 2's day-3 primary is ignored.
    assert system.frame["uniquepid"].tolist() == ["p1", "p3"]
    assert system.frame["diagnosis_system"].tolist() == ["cardiovascular", "cardiovascular"]
    assert "apacheadmissiondx" in system.schema.categorical
    assert system.frame["admission_dx"][0] == (
        "All Diagnosis|Non-operative|Diagnosis|Cardiovascular|CHF;Elective|No"
    )
    group = _load(folder, task="diagnosis_group", outcome="icu_stay_over_3_days")
    assert group.frame["diagnosis_group"].tolist() == [
        "cardiovascular|shock / hypotension",
        "cardiovascular|arrhythmias",
    ]
    assert group.frame["icu_stay_over_3_days"].tolist() == [1, 1]


# -- the real demo tables (METAMED_DATA_DIR) -------------------------------------------


@pytest.fixture(scope="module")
def eicu_dir(need_dataset) -> Path:
    return need_dataset("eicu-crd-demo")


@pytest.fixture(scope="module")
def cohort(eicu_dir: Path):
    return load_dataset("eicu-demo-diagnoses", eicu_dir)


def test_counts_and_one_task_per_patient(cohort, eicu_dir: Path) -> None:
    frame = cohort.frame
    # 1,841 patients; 1,756 have a stay with an admission diagnosis and a discharge status.
    assert len(frame) == 1_756 and frame["uniquepid"].is_unique
    assert int(frame["hospital_mortality"].sum()) == 162
    summary = TaskSet(cohort).summary()
    assert len(summary) == 224 and (summary["n"] >= 20).sum() == 26
    assert summary.set_index("task")["n"]["Sepsis, pulmonary"] == 96
    split = TaskSet(cohort).random_split(test_fraction=0.3, val_fraction=0.1, seed=1)
    sides = [
        set(TaskSet(cohort).frames(p)["uniquepid"]) for p in (split.train, split.val, split.test)
    ]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    for task, n_tasks in (("diagnosis_system", 14), ("diagnosis_group", 83)):
        other = load_dataset("eicu-demo-diagnoses", eicu_dir, task=task)
        assert other.frame["uniquepid"].is_unique and other.frame[task].nunique() == n_tasks


def test_no_code_entered_after_the_first_day(cohort, eicu_dir: Path) -> None:
    history = pd.read_csv(eicu_dir / "pasthistory.csv.gz")
    late = history[history["pasthistoryenteredoffset"] > dx.FIRST_DAY_MIN]
    early = history[history["pasthistoryenteredoffset"] <= dx.FIRST_DAY_MIN]
    assert len(late) > 2_000  # the rule matters: 18 % of rows are entered later
    # Stay ids are not kept, so check per patient: every code comes from a first-day row of
    # one of the patient's stays.
    patient = pd.read_csv(eicu_dir / "patient.csv.gz", usecols=[KEY, "uniquepid"])
    early = early.merge(patient, on=KEY)
    allowed = early.groupby("uniquepid")["pasthistorypath"].agg(
        lambda p: set(p.str.removeprefix(dx.PAST_HISTORY_PREFIX))
    )
    codes = cohort.frame.set_index("uniquepid")["past_history"].dropna().str.split(";")
    assert len(codes) > 1_700
    for who, patient_codes in codes.items():
        assert set(patient_codes) <= allowed[who], who
    admission = cohort.frame["admission_dx"].dropna()
    assert not admission.str.contains(dx.RESTATES_TASK, regex=False).any()


def test_no_leaking_column_and_eicu_demo_unchanged(cohort, eicu_dir: Path) -> None:
    features = set(cohort.schema.features)
    for col in eicu_demo.EICU_LEAKING_COLUMNS:
        assert col not in features and col not in cohort.frame.columns, col
    assert cohort.schema.reference == eicu_demo.EICU_REFERENCE_COLUMNS
    assert cohort.schema.codesets == ("past_history", "admission_dx")
    plain = load_dataset("eicu-demo", eicu_dir)
    assert len(plain.frame) == 2_492 and not plain.schema.codesets
    assert np.isfinite(cohort.frame["age"].dropna()).all()
