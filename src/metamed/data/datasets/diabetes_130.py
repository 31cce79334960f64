"""Diabetes 130-US hospitals 1999-2008: readmission within 30 days, one cohort per diagnosis.

101,766 inpatient encounters (71,518 patients) of diabetic patients from 130 US hospitals
and delivery networks (Cerner Health Facts), stays of 1-14 days (Strack et al., BioMed
Res Int 2014:781670; UCI dataset 296, CC BY 4.0).  ``diabetic_data.csv.gz`` has one row
per encounter; ``IDs_mapping.csv`` holds the labels of the three admission id columns.
The public file has no hospital id, so a task is a *condition*: the cohort of patients
whose primary diagnosis (``diag_1``, ICD-9-CM) falls in one 3-character category
(MetaPred's setting: meta-train on the common diagnoses, adapt to a rare one).

What this loader does to the raw values, and why:

* **One row per patient: the patient's first eligible encounter** (lowest
  ``encounter_id``), as Strack et al. did.  Of the 71,518 patients, 16,773 have several
  encounters and 14,408 of them have encounters under two or more primary diagnoses:
  kept whole, such a patient would sit in two cohorts, one of them a meta-test cohort,
  and a patient's own later stays (and their readmission labels) could fall in both the
  support and the query set of one cohort.  With one encounter per patient neither can
  happen by construction; ``patient_nbr`` stays a group column so that tests and
  protocols can check it.  The cost: later encounters are frequent readmitters, so the
  readmission rate falls from 11.2 % over all encounters to about 9 %.
* **Encounters that could not be followed by a readmission are not eligible**: those
  whose discharge disposition (``IDs_mapping.csv``) says *Expired* or *Hospice* (ids
  11, 13, 14, 19, 20, 21), as in Strack et al., and those without a primary diagnosis
  (no cohort).  Eligibility is decided before the first encounter is chosen, so a
  patient whose first stay ended in hospice care but who came back later keeps the
  later stay.
* ICD-9 codes lost their leading zeros in the file (``8`` is category ``008``, ``38.9``
  is ``038.9``): every code is written in canonical form (:mod:`metamed.data.icd9`).
  The task is the category of ``diag_1`` (``250.83`` -> ``250``; four characters for E
  codes), or with ``task="icd9_chapter"`` its ICD-9-CM chapter (``250.83`` ->
  ``240-279 endocrine, nutritional, metabolic, immunity``).
* The secondary diagnoses ``diag_2`` and ``diag_3`` become one code-set column,
  ``secondary_diagnoses`` (``"428.0;V45.81"``), for the preprocessor's multi-hot
  features (rolled up the ICD-9 hierarchy with ``code_levels`` if wanted).  The primary
  diagnosis is the task and never a feature.
* ``?`` means missing (``race``; ``gender`` ``Unknown/Invalid`` too).  The age band
  (``[70-80)``) becomes its midpoint in years (75).  Admission type and source become
  their labels from ``IDs_mapping.csv``; the labels that say nothing (``NULL``, ``Not
  Available``, ``Not Mapped``, ``Unknown/Invalid``, several ids each) become missing.
  In ``max_glu_serum`` and ``A1Cresult`` the text ``None`` means the test was not done
  and becomes the level ``not measured`` (not a missing value: not testing is itself
  a clinical decision that Strack et al. found associated with readmission).
  ``change`` (``Ch`` / ``No``) and ``diabetesMed`` (``Yes`` / ``No``) become 1/0; the 23
  drug columns keep their levels (``No``, ``Steady``, ``Up``, ``Down``).
* Not features: ``encounter_id`` (an identifier, used only to order a patient's
  encounters), ``weight`` (missing in 97 % of encounters), ``payer_code`` (the insurer,
  missing in 40 %), ``medical_specialty`` (of the admitting physician, missing in 49 %,
  73 values) and ``discharge_disposition_id`` (the discharge plan: it decides
  eligibility above, and as an input would let a model learn the care decision rather
  than the patient).  The features are those the issue asked for: demographics,
  admission type and source, utilisation counts, HbA1c and glucose tests, the
  diabetes drugs and the secondary diagnoses.

Leaking column, dropped on purpose: ``readmitted`` (``NO`` / ``>30`` / ``<30``), the
outcome itself; the cohort holds only its binary form ``readmitted_30d`` (``<30`` = 1).

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema
from metamed.data.datasets._clean import read_csv, recode
from metamed.data.icd9 import icd9_category, icd9_chapter, icd9_chapter_name, normalize_icd9
from metamed.data.registry import DatasetSpec, Option, fetch_command, read_files
from metamed.errors import MetamedValueError
from metamed.outcomes import BINARY

__all__ = [
    "DIABETES_DRUGS",
    "DIABETES_LEAKING_COLUMNS",
    "DIABETES_TASKS",
    "NOT_ELIGIBLE_WORDS",
    "SPEC",
    "read_id_labels",
]

NAME = "diabetes-130"
DATA_FILE = "diabetic_data.csv.gz"
IDS_FILE = "IDs_mapping.csv"
OUTCOME = "readmitted_30d"
RAW_OUTCOME = "readmitted"
READMITTED_CODES = ("NO", ">30", "<30")
CODESET = "secondary_diagnoses"
PATIENT = "patient_nbr"

#: Task option value -> task column.
DIABETES_TASKS: dict[str, str] = {
    "icd9_category": "diag_1_category",
    "icd9_chapter": "diag_1_chapter",
}
#: The 23 drug columns, in file order (No / Steady / Up / Down).
DIABETES_DRUGS: tuple[str, ...] = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)
#: Utilisation counts (``time_in_hospital`` in days; the ``number_*`` visits are in the
#: year before the encounter).
COUNTS: tuple[str, ...] = (
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
)
#: Columns the loader reads from the data file.
RAW_COLUMNS: tuple[str, ...] = (
    "encounter_id",
    PATIENT,
    "race",
    "gender",
    "age",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    *COUNTS,
    "diag_1",
    "diag_2",
    "diag_3",
    "max_glu_serum",
    "A1Cresult",
    *DIABETES_DRUGS,
    "change",
    "diabetesMed",
    RAW_OUTCOME,
)
#: Columns read as whole numbers: identifiers, coded ids and counts.
INTEGER_COLUMNS: tuple[str, ...] = (
    "encounter_id", PATIENT, "admission_type_id", "discharge_disposition_id",
    "admission_source_id", *COUNTS,
)  # fmt: skip
#: Columns read as text: every other column the loader reads.
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c not in INTEGER_COLUMNS)
#: The outcome in its raw form (see the module docstring).
DIABETES_LEAKING_COLUMNS: tuple[str, ...] = (RAW_OUTCOME,)
#: A discharge disposition whose label holds one of these words ends every chance of a
#: readmission (ids 11, 13, 14, 19, 20, 21 of ``IDs_mapping.csv``).
NOT_ELIGIBLE_WORDS: tuple[str, ...] = ("Expired", "Hospice")
#: ``IDs_mapping.csv`` labels that carry no information: the id becomes missing.
UNINFORMATIVE_LABELS: tuple[str, ...] = ("NULL", "Not Available", "Not Mapped", "Unknown/Invalid")
#: Age bands of the file -> midpoint in years.
AGE_MIDPOINTS: dict[str, float] = {f"[{10 * d}-{10 * d + 10})": 10.0 * d + 5.0 for d in range(10)}
NOT_MEASURED = "not measured"

_UNITS = {"age_years": "years", "time_in_hospital": "days"}


def read_id_labels(path: Path) -> dict[str, dict[int, str]]:
    """The three lookup tables of ``IDs_mapping.csv``: id column -> {id: label}.

    The file stacks three two-column tables (``admission_type_id``,
    ``discharge_disposition_id``, ``admission_source_id``), each under its own header
    and ended by a line holding only a comma.  Labels are stripped of spaces.
    """
    tables: dict[str, dict[int, str]] = {}
    current: dict[int, str] | None = None
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            cells = [c.strip() for c in row]
            if not any(cells):
                current = None
            elif current is None:
                current = tables.setdefault(cells[0], {})
            else:
                current[int(cells[0])] = cells[1]
    expected = ("admission_type_id", "discharge_disposition_id", "admission_source_id")
    if tuple(tables) != expected:
        raise MetamedValueError(
            f"Dataset '{NAME}': {path.name} should hold the tables {list(expected)}, found "
            f"{list(tables)}. Re-fetch it: {fetch_command(NAME)}"
        )
    return tables


def _labels(ids: pd.Series, labels: dict[int, str], column: str) -> pd.Series:
    unknown = sorted(int(i) for i in set(ids.unique()) - set(labels))
    if unknown:
        raise MetamedValueError(
            f"Dataset '{NAME}': {DATA_FILE}, column '{column}' holds id(s) {unknown[:5]} that "
            f"{IDS_FILE} does not label."
        )
    named = ids.map(labels)
    return named.mask(named.isin(UNINFORMATIVE_LABELS)).astype(object)


def _canonical_codes(codes: pd.Series, column: str) -> pd.Series:
    """ICD-9 codes in canonical form (missing stays missing); a non-ICD-9 text is refused."""
    canonical = {code: normalize_icd9(code) for code in codes.dropna().unique()}
    bad = [code for code, value in canonical.items() if value is None]
    if bad:
        raise MetamedValueError(
            f"Dataset '{NAME}': {DATA_FILE}, column '{column}' holds {bad[0]!r}, which is not "
            "an ICD-9-CM diagnosis code."
        )
    return codes.map(canonical).astype(object)


def _code_set(*columns: pd.Series) -> pd.Series:
    """``;``-joined codes of several code columns, row by row (missing where none)."""
    cells = []
    for row in zip(*(c.tolist() for c in columns), strict=True):
        codes = sorted({c for c in row if isinstance(c, str)})  # NaN: no code
        cells.append(CODESET_SEPARATOR.join(codes) if codes else np.nan)
    return pd.Series(cells, index=columns[0].index, dtype=object)


def _chapter_task(code: str) -> str:
    """Task name of a canonical code's chapter, e.g. ``"390-459 circulatory system"``."""
    chapter = str(icd9_chapter(code))  # every canonical code has one
    return f"{chapter} {icd9_chapter_name(chapter)}"


def _load(folder: Path, *, task: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the two verified files."""
    ids = read_id_labels(folder / IDS_FILE)
    # Text columns as plain Python strings: the cleaning below looks values up one by one,
    # which Arrow-backed strings make several times slower.
    raw = read_csv(
        folder / DATA_FILE,
        NAME,
        RAW_COLUMNS,
        keep_default_na=False,
        na_values=["?"],
        dtype=dict.fromkeys(TEXT_COLUMNS, object),
    )[list(RAW_COLUMNS)]
    bad = sorted(set(raw[RAW_OUTCOME].unique()) - set(READMITTED_CODES))
    if bad:
        raise MetamedValueError(
            f"Dataset '{NAME}': {DATA_FILE}, column 'readmitted' holds {bad[:5]}; expected "
            f"{list(READMITTED_CODES)}."
        )

    disposition = raw["discharge_disposition_id"].map(ids["discharge_disposition_id"])
    ended = disposition.fillna("").str.contains("|".join(NOT_ELIGIBLE_WORDS))
    eligible = raw.loc[~ended & raw["diag_1"].notna(), ["encounter_id", PATIENT]]
    first = eligible.sort_values("encounter_id", kind="stable").drop_duplicates(PATIENT)
    frame = raw.loc[first.index].reset_index(drop=True)  # in encounter order

    diag = {c: _canonical_codes(frame[c], c) for c in ("diag_1", "diag_2", "diag_3")}
    task_col = DIABETES_TASKS[task]
    place = icd9_category if task == "icd9_category" else _chapter_task
    names = {code: place(code) for code in diag["diag_1"].unique()}
    frame[task_col] = diag["diag_1"].map(names).astype(object)
    frame[CODESET] = _code_set(diag["diag_2"], diag["diag_3"])

    frame["age_years"] = frame["age"].map(AGE_MIDPOINTS)
    if frame["age_years"].isna().any():
        raise MetamedValueError(
            f"Dataset '{NAME}': {DATA_FILE}, column 'age' holds bands outside "
            f"{list(AGE_MIDPOINTS)}."
        )
    frame["gender"] = frame["gender"].mask(frame["gender"] == "Unknown/Invalid")
    frame["admission_type"] = _labels(
        frame["admission_type_id"], ids["admission_type_id"], "admission_type_id"
    )
    frame["admission_source"] = _labels(
        frame["admission_source_id"], ids["admission_source_id"], "admission_source_id"
    )
    for col in ("max_glu_serum", "A1Cresult"):
        frame[col] = frame[col].replace("None", NOT_MEASURED)
    frame["change"] = recode(
        frame["change"], {"Ch": 1.0, "No": 0.0}, where=f"{DATA_FILE}, 'change'"
    )
    frame["diabetesMed"] = recode(
        frame["diabetesMed"], {"Yes": 1.0, "No": 0.0}, where=f"{DATA_FILE}, 'diabetesMed'"
    )
    frame[OUTCOME] = (frame[RAW_OUTCOME] == "<30").astype(np.int64)
    frame[[*COUNTS]] = frame[[*COUNTS]].astype(float)

    schema = Schema(
        outcome=OUTCOME,
        numeric=("age_years", *COUNTS, "change", "diabetesMed"),
        categorical=(
            "race",
            "gender",
            "admission_type",
            "admission_source",
            "max_glu_serum",
            "A1Cresult",
            *DIABETES_DRUGS,
        ),
        codesets=(CODESET,),
        group=(task_col, PATIENT),
        outcome_type=BINARY,
        units=dict(_UNITS),
    )
    return Cohort(
        name=NAME,
        frame=frame[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "UCI Diabetes 130-US hospitals 1999-2008 (diabetic_data.csv, IDs_mapping.csv)",
            "cleaning": "first eligible encounter per patient (not expired/hospice, diag_1 "
            "known); ICD-9 codes canonical; task = diag_1 category or chapter; diag_2 + diag_3 "
            "-> code set; age band -> midpoint; uninformative admission ids -> missing",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="Diabetes 130-US hospitals 1999-2008 (readmission)",
    description=(
        "69,973 diabetic patients (first eligible encounter of 71,518; 101,766 encounters) "
        "from 130 US hospitals (Cerner Health Facts); outcome: readmission < 30 days; tasks: "
        "primary ICD-9 diagnosis category (661) or chapter; secondary diagnoses as a code set."
    ),
    licence="CC BY 4.0",
    citation=(
        "Clore J, Cios K, DeShazo J, Strack B. Diabetes 130-US Hospitals for Years 1999-2008 "
        "[dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C5230J. "
        "Strack B, DeShazo JP, Gennings C, et al. Impact of HbA1c measurement on hospital "
        "readmission rates. BioMed Res Int 2014:781670."
    ),
    homepage="https://archive.ics.uci.edu/dataset/296",
    folder="diabetes-130-us-hospitals",
    files=read_files(__package__, "diabetes_130.files.json"),
    options=(
        Option(
            "task",
            "icd9_category",
            "what one task is: the primary diagnosis's ICD-9 category (3 characters) or chapter",
            choices=tuple(DIABETES_TASKS),
        ),
    ),
    loader=_load,
    n_patients=69973,
    n_tasks=661,
)
