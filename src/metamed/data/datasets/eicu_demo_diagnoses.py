"""eICU demo v2.0 by diagnosis: one cohort per admission diagnosis, one stay per patient.

The stays, cleaning rules, features, reference scores and outcomes of ``eicu-demo``
(:mod:`metamed.data.datasets.eicu_demo`, whose docstring lists them), cut into *condition*
tasks instead of hospitals, with two code-set features from the first ICU day: the
patient's past history and the admission diagnoses.  The ``eicu-demo`` dataset itself is
unchanged.

What this loader adds, and why:

* **Tasks** (option ``task``): ``admission_diagnosis`` (default; ``apacheadmissiondx``,
  the APACHE admission diagnosis, 236 values; the 299 stays without one, mostly ICU
  readmissions, belong to no cohort), ``diagnosis_system`` or ``diagnosis_group``: the
  first level (``cardiovascular``) or first two levels (``cardiovascular|shock /
  hypotension``) of ``diagnosis.diagnosisstring`` for the stay's *primary* diagnosis
  entered in the first 24 hours (the earliest such row; stays without one belong to no
  cohort).  With a ``diagnosis_*`` task, ``apacheadmissiondx`` stays a feature.
* **One stay per patient.**  222 patients have stays under two admission diagnoses; kept
  whole, a patient could be both a meta-training and a meta-test example, and a patient's
  second stay (sharing the first one's hospital outcome) could sit in the support set
  while the first is in the query set.  So among a patient's stays that have a cohort and
  a known outcome, only the first is kept: the earliest ``hospitaldischargeyear``, then
  the lowest ``patienthealthsystemstayid`` (the demo has no dates, so two hospital
  admissions in one year are ordered by their id, an arbitrary but fixed choice), then
  the lowest ``unitvisitnumber``.  These ordering columns are never features.
* **Code sets, first 24 hours only.**  ``past_history``: the ``pasthistorypath`` of every
  ``pasthistory`` row entered within 24 hours of ICU admission (``pasthistoryenteredoffset
  <= 1440`` min), without the common prefix ``notes/Progress Notes/Past History/`` (e.g.
  ``Organ Systems/Pulmonary/Asthma/asthma``).  ``admission_dx``: the ``admitdxpath`` of
  every ``admissiondx`` row entered within 24 hours, without the prefix ``admission
  diagnosis|`` (e.g. ``Elective|Yes``, ``Non-operative Organ Systems|Organ
  System|Cardiovascular``).  18 % of past-history rows are entered later: a row entered
  on day 4 says by its time alone that the patient was still in the ICU, which is the
  ``icu_stay_over_3_days`` outcome, and later notes can follow the events that end in
  death.  The window is the APACHE day-1 window of the other features.
* With ``task="admission_diagnosis"`` the ``All Diagnosis|...`` admission rows are left
  out of ``admission_dx``: they restate ``apacheadmissiondx``, the task itself (a
  constant within each cohort, and an unknown code for every held-out one).

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema
from metamed.data.datasets._clean import files_named, read_csv
from metamed.data.datasets.eicu_demo import (
    APSVAR_COLUMNS,
    EICU_REFERENCE_COLUMNS,
    EICU_UNITS,
    PATIENT_CATEGORICAL,
    PATIENT_NUMERIC,
    PREDVAR_CATEGORICAL,
    PREDVAR_COLUMNS,
    stay_table,
)
from metamed.data.datasets.eicu_demo import SPEC as EICU_SPEC
from metamed.data.registry import DatasetSpec, Option
from metamed.outcomes import BINARY

__all__ = ["DIAGNOSIS_TASKS", "FIRST_DAY_MIN", "SPEC"]

NAME = "eicu-demo-diagnoses"
KEY = "patientunitstayid"
#: Code-set rows entered later than this after ICU admission are not used (minutes).
FIRST_DAY_MIN = 24 * 60
#: Task option value -> task column.
DIAGNOSIS_TASKS: dict[str, str] = {
    "admission_diagnosis": "apacheadmissiondx",
    "diagnosis_system": "diagnosis_system",
    "diagnosis_group": "diagnosis_group",
}
#: Columns of ``patient.csv.gz`` that order a patient's stays (never features).
ORDER_COLUMNS: tuple[str, ...] = (
    "hospitaldischargeyear",
    "patienthealthsystemstayid",
    "unitvisitnumber",
    KEY,
)
PAST_HISTORY_PREFIX = "notes/Progress Notes/Past History/"
ADMISSION_DX_PREFIX = "admission diagnosis|"
#: Admission-diagnosis rows that restate ``apacheadmissiondx``.
RESTATES_TASK = "All Diagnosis|"
CODESETS: tuple[str, ...] = ("past_history", "admission_dx")
FILES = (
    "patient.csv.gz",
    "hospital.csv.gz",
    "apacheapsvar.csv.gz",
    "apachepredvar.csv.gz",
    "apachepatientresult.csv.gz",
    "pasthistory.csv.gz",
    "admissiondx.csv.gz",
    "diagnosis.csv.gz",
)


def _code_sets(rows: pd.DataFrame, path: str, prefix: str) -> pd.Series:
    """Stay id -> ``;``-joined codes (the paths without ``prefix``), one copy of each."""
    codes = rows[path].str.removeprefix(prefix).str.replace(CODESET_SEPARATOR, ",", regex=False)
    table = pd.DataFrame({KEY: rows[KEY], "code": codes}).drop_duplicates()
    return table.groupby(KEY)["code"].agg(lambda c: CODESET_SEPARATOR.join(sorted(c)))


def _first_day(folder: Path, table: str, offset: str, path: str) -> pd.DataFrame:
    rows = read_csv(folder / f"{table}.csv.gz", NAME, (KEY, offset, path))
    return rows[rows[offset] <= FIRST_DAY_MIN]


def _primary_diagnoses(folder: Path) -> pd.Series:
    """Stay id -> ``diagnosisstring`` of its first primary diagnosis of the first 24 hours."""
    columns = (KEY, "diagnosisid", "diagnosisoffset", "diagnosisstring", "diagnosispriority")
    rows = read_csv(folder / "diagnosis.csv.gz", NAME, columns)
    primary = rows[
        (rows["diagnosispriority"] == "Primary") & (rows["diagnosisoffset"] <= FIRST_DAY_MIN)
    ]
    first = primary.sort_values(["diagnosisoffset", "diagnosisid"]).drop_duplicates(KEY)
    return first.set_index(KEY)["diagnosisstring"]


def _load(folder: Path, *, outcome: str, task: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified demo tables."""
    frame = stay_table(folder, outcome, extra=ORDER_COLUMNS)
    task_col = DIAGNOSIS_TASKS[task]
    if task != "admission_diagnosis":
        levels = 1 if task == "diagnosis_system" else 2
        primary = _primary_diagnoses(folder).str.split("|").str[:levels].str.join("|")
        frame[task_col] = frame[KEY].map(primary).astype(object)
    frame = frame[frame[task_col].notna()]
    first = frame.sort_values(list(ORDER_COLUMNS), kind="stable").drop_duplicates("uniquepid")
    frame = first.sort_values(KEY, kind="stable").copy()  # the demo's stay order

    history = _first_day(folder, "pasthistory", "pasthistoryenteredoffset", "pasthistorypath")
    admission = _first_day(folder, "admissiondx", "admitdxenteredoffset", "admitdxpath")
    if task == "admission_diagnosis":
        restating = admission["admitdxpath"].str.startswith(ADMISSION_DX_PREFIX + RESTATES_TASK)
        admission = admission[~restating]
    frame["past_history"] = frame[KEY].map(
        _code_sets(history, "pasthistorypath", PAST_HISTORY_PREFIX)
    )
    frame["admission_dx"] = frame[KEY].map(
        _code_sets(admission, "admitdxpath", ADMISSION_DX_PREFIX)
    )
    for col in (*CODESETS, task_col):
        frame[col] = frame[col].astype(object)

    patient_categorical = tuple(c for c in PATIENT_CATEGORICAL if c != task_col)
    schema = Schema(
        outcome=outcome,
        numeric=(*PATIENT_NUMERIC, *APSVAR_COLUMNS, *PREDVAR_COLUMNS),
        categorical=(*patient_categorical, "region", "unittype", *PREDVAR_CATEGORICAL),
        codesets=CODESETS,
        group=(task_col, "hospitalid", "uniquepid"),
        reference=EICU_REFERENCE_COLUMNS,
        outcome_type=BINARY,
        units=dict(EICU_UNITS),
    )
    return Cohort(
        name=NAME,
        frame=frame.reset_index(drop=True)[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "eICU-CRD demo v2.0: the eicu-demo tables plus pasthistory, admissiondx "
            "and diagnosis",
            "cleaning": "eicu-demo's rules; tasks = admission diagnosis or primary diagnosis "
            "levels; first stay per patient; past history and admission diagnoses entered in "
            "the first 24 h as code sets",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="eICU Collaborative Research Database demo v2.0, by diagnosis",
    description=(
        "ICU stays of the eICU demo (one per patient) in condition cohorts: APACHE admission "
        "diagnosis (default) or the first levels of the primary diagnosis; outcomes: "
        "in-hospital mortality or ICU stay > 3 days; past history and admission diagnoses "
        "as code sets. APACHE IVa predictions are reference scores, never features."
    ),
    licence=EICU_SPEC.licence,
    citation=EICU_SPEC.citation,
    homepage=EICU_SPEC.homepage,
    folder=EICU_SPEC.folder,
    files=files_named(__package__, "eicu_demo.files.json", *FILES),
    options=(
        *(option for option in EICU_SPEC.options if option.name == "outcome"),
        Option(
            "task",
            "admission_diagnosis",
            "what one task is: the APACHE admission diagnosis, or the first one or two levels "
            "of the primary diagnosis",
            choices=tuple(DIAGNOSIS_TASKS),
        ),
    ),
    loader=_load,
    n_patients=1756,
    n_tasks=224,
)
