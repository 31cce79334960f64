"""IWPC warfarin pharmacogenetics cohort: stable weekly warfarin dose at 22 project sites.

The raw spreadsheet of the International Warfarin Pharmacogenetics Consortium (6,256
patients, 68 columns; IWPC, N Engl J Med 2009;360:753-764; PharmGKB, CC BY-SA 4.0):
demographics, race, height, weight, indication, comorbidities, co-medications, CYP2C9
and VKORC1 genotypes, target INR and the stable therapeutic dose.  Code meanings follow
the PharmGKB IWPC data dictionary.

What this loader does to the raw values, and why:

* **Cohort rule** (the IWPC paper's): patients who reached a stable dose (``Subject
  Reached Stable Dose of Warfarin == 1``) with the dose recorded: 5,919 of 6,256 (273
  never reached a stable dose, 49 have no answer, 15 stable ones have no dose).  Every
  site keeps patients (63-828).
* **Outcome** ``therapeutic_dose_mg_week``: ``Therapeutic Dose of Warfarin`` (mg/week),
  numeric, as recorded (2.1-315; three doses above 140 mg/week are kept: the data do not
  say they are errors).
* Columns are renamed to short snake_case names (the raw names hold spaces, brackets and
  the whole SNP description, e.g. ``VKORC1 genotype:   -1639 G>A (3673); ...``); the
  table in ``docs/datasets/iwpc-warfarin.md`` maps each back.
* ``Age`` (decade bands as text) becomes ``age_decades``, the number of the band
  (``"10 - 19"`` = 1, ... ``"90+"`` = 9), which is how the IWPC formulas use age.
* ``Indication for Warfarin Treatment`` holds codes 1-8 written as ``"3; 8"``, ``"1;2"``,
  ``"1,2"`` or ``"1 or 2"`` (one site cannot tell DVT from PE: its comment says so); it
  becomes the code-set column ``indication`` with the dictionary's labels (1 dvt, 2 pe,
  3 afib_flutter, 4 heart_valve, 5 cardiomyopathy_lv_dilation, 6 stroke,
  7 post_orthopedic, 8 other).
* ``Simvastatin (Zocor)`` mixes ``0``/``1`` with ``NO``/``YES``: all become 0/1.
  ``Ethnicity (OMB)`` spells one level two ways (``not Hispanic or Latino`` and ``Not
  Hispanic or Latino``): they become one.  Medication and comorbidity flags stay 0/1
  with missing where the site did not record them (most sites recorded only a few).
* Genotypes: the IWPC *consensus* columns (``CYP2C9 consensus`` and the seven ``VKORC1 ...
  consensus`` SNPs) are kept as categorical; the per-assay and QC genotype columns they
  combine are dropped as duplicates.
* Dropped as identifiers or free text: ``PharmGKB Subject ID``, ``PharmGKB Sample ID``,
  ``Race (Reported)`` and ``Ethnicity (Reported)`` (28 spellings each; the OMB
  categories are kept), ``Comorbidities`` and ``Medications`` (free text; their
  structured flags are kept), ``Comments regarding Project Site Dataset`` (site notes);
  ``Estimated Target INR Range Based on Indication`` is derived from the indication,
  which is kept.

Leaking columns, dropped on purpose: ``INR on Reported Therapeutic Dose of Warfarin``
is measured on the outcome dose (after it, and because of it), and ``Subject Reached
Stable Dose of Warfarin`` is the cohort rule (constant once applied, and the stable dose
is the outcome's own definition).

The inputs of the IWPC clinical and pharmacogenetic dosing formulas (age decades,
height, weight, race, VKORC1, CYP2C9, amiodarone, enzyme inducers) are ordinary patient
characteristics and stay features; what is never a feature is a formula's *output*, the
predicted dose, which belongs to the baseline that computes it.

Tasks (option ``task``): ``site`` (default; ``Project Site`` 1-22, 63-828 patients;
site mean dose from about 19 mg/week at the all-Asian sites 3 and 4 to 45 mg/week at
site 11) or ``race`` (``Race (OMB)``: White, Asian, Black or African American; the
patients of unknown race are dropped, as they are not one population).  The project
site is always a group column; race is a feature whenever it is not the task.

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.datasets._clean import read_csv, recode
from metamed.data.registry import DatasetSpec, Option, read_files
from metamed.errors import MetamedValueError
from metamed.outcomes import NUMERIC

__all__ = [
    "INDICATION_LABELS",
    "IWPC_LEAKING_COLUMNS",
    "IWPC_RENAMES",
    "IWPC_TASKS",
    "SPEC",
]

NAME = "iwpc-warfarin"
FILE = "iwpc.csv.gz"
OUTCOME = "therapeutic_dose_mg_week"
RAW_OUTCOME = "Therapeutic Dose of Warfarin"
STABLE = "Subject Reached Stable Dose of Warfarin"

#: Indication codes of the PharmGKB IWPC data dictionary.
INDICATION_LABELS: dict[str, str] = {
    "1": "dvt",
    "2": "pe",
    "3": "afib_flutter",
    "4": "heart_valve",
    "5": "cardiomyopathy_lv_dilation",
    "6": "stroke",
    "7": "post_orthopedic",
    "8": "other",
}
#: Decade bands of ``Age`` -> number of the decade (the IWPC formulas' "age in decades").
AGE_DECADES: dict[str, float] = {
    **{f"{10 * d} - {10 * d + 9}": float(d) for d in range(1, 9)},
    "90+": 9.0,
}

_NUMERIC_RENAMES = {
    "Height (cm)": "height_cm",
    "Weight (kg)": "weight_kg",
    "Target INR": "target_inr",
    "Diabetes": "diabetes",
    "Congestive Heart Failure and/or Cardiomyopathy": "chf_or_cardiomyopathy",
    "Valve Replacement": "valve_replacement",
    "Aspirin": "aspirin",
    "Acetaminophen or Paracetamol (Tylenol)": "acetaminophen",
    "Was Dose of Acetaminophen or Paracetamol (Tylenol) >1300mg/day": "acetaminophen_over_1300mg",
    "Atorvastatin (Lipitor)": "atorvastatin",
    "Fluvastatin (Lescol)": "fluvastatin",
    "Lovastatin (Mevacor)": "lovastatin",
    "Pravastatin (Pravachol)": "pravastatin",
    "Rosuvastatin (Crestor)": "rosuvastatin",
    "Cerivastatin (Baycol)": "cerivastatin",
    "Amiodarone (Cordarone)": "amiodarone",
    "Carbamazepine (Tegretol)": "carbamazepine",
    "Phenytoin (Dilantin)": "phenytoin",
    "Rifampin or Rifampicin": "rifampin",
    "Sulfonamide Antibiotics": "sulfonamide_antibiotics",
    "Macrolide Antibiotics": "macrolide_antibiotics",
    "Anti-fungal Azoles": "antifungal_azoles",
    "Herbal Medications, Vitamins, Supplements": "herbal_supplements",
    "Current Smoker": "current_smoker",
}
_CATEGORICAL_RENAMES = {
    "Gender": "gender",
    "Ethnicity (OMB)": "ethnicity",
    "CYP2C9 consensus": "cyp2c9",
    "VKORC1     -1639 consensus": "vkorc1_1639",
    "VKORC1 497 consensus": "vkorc1_497",
    "VKORC1 1173 consensus": "vkorc1_1173",
    "VKORC1 1542 consensus": "vkorc1_1542",
    "VKORC1 3730 consensus": "vkorc1_3730",
    "VKORC1 2255 consensus": "vkorc1_2255",
    "VKORC1     -4451 consensus": "vkorc1_4451",
}
#: Raw column -> cohort column, for every raw column the cohort keeps.
IWPC_RENAMES: dict[str, str] = {
    "Project Site": "project_site",
    "Race (OMB)": "race",
    "Age": "age_decades",
    "Simvastatin (Zocor)": "simvastatin",
    "Indication for Warfarin Treatment": "indication",
    **_NUMERIC_RENAMES,
    **_CATEGORICAL_RENAMES,
    RAW_OUTCOME: OUTCOME,
}
#: Measured on the outcome dose, or the cohort rule itself (see the module docstring).
IWPC_LEAKING_COLUMNS: tuple[str, ...] = ("INR on Reported Therapeutic Dose of Warfarin", STABLE)
#: Task option value -> task column.
IWPC_TASKS: dict[str, str] = {"site": "project_site", "race": "race"}
UNKNOWN_RACE = "Unknown"

_UNITS = {"height_cm": "cm", "weight_kg": "kg", OUTCOME: "mg/week", "age_decades": "decades"}
_SPLIT_CODES = re.compile(r"\s*(?:;|,|\bor\b)\s*")


def _indication(series: pd.Series) -> pd.Series:
    """Code cells such as ``"3; 8"`` or ``"1 or 2"`` as ``;``-separated labels."""

    def labels(cell: Any) -> object:  # Any: one cell of an object column
        if pd.isna(cell):
            return np.nan
        codes = [c for c in _SPLIT_CODES.split(str(cell).strip()) if c]
        unknown = sorted(set(codes) - set(INDICATION_LABELS))
        if unknown:
            raise MetamedValueError(
                f"{FILE}, column 'Indication for Warfarin Treatment': unexpected code(s) "
                f"{unknown} in {cell!r}; expected codes 1-8 (PharmGKB IWPC data dictionary)."
            )
        return ";".join(sorted({INDICATION_LABELS[c] for c in codes}))

    return series.map(labels)


def _load(folder: Path, *, task: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified ``iwpc.csv.gz``."""
    raw = read_csv(folder / FILE, NAME, (*IWPC_RENAMES, STABLE))
    raw = raw[(raw[STABLE] == 1) & raw[RAW_OUTCOME].notna()]
    frame = raw[list(IWPC_RENAMES)].rename(columns=IWPC_RENAMES).reset_index(drop=True)

    frame["age_decades"] = recode(frame["age_decades"], AGE_DECADES, where=f"{FILE}, column 'Age'")
    frame["simvastatin"] = recode(
        frame["simvastatin"],
        {"0": 0.0, "1": 1.0, "NO": 0.0, "YES": 1.0},
        where=f"{FILE}, column 'Simvastatin (Zocor)'",
    )
    frame["indication"] = _indication(frame["indication"])
    ethnicity = frame["ethnicity"].astype("string")
    frame["ethnicity"] = ethnicity.str.replace(
        "Not Hispanic or Latino", "not Hispanic or Latino", regex=False
    ).astype(object)
    frame[list(_NUMERIC_RENAMES.values())] = frame[list(_NUMERIC_RENAMES.values())].astype(float)

    task_col = IWPC_TASKS[task]
    if task_col == "race":
        frame = frame[frame["race"] != UNKNOWN_RACE].reset_index(drop=True)
    schema = Schema(
        outcome=OUTCOME,
        numeric=("age_decades", "simvastatin", *_NUMERIC_RENAMES.values()),
        categorical=(
            *(("race",) if task_col != "race" else ()),
            *_CATEGORICAL_RENAMES.values(),
        ),
        codesets=("indication",),
        group=tuple(dict.fromkeys((task_col, "project_site"))),
        outcome_type=NUMERIC,
        units=dict(_UNITS),
    )
    return Cohort(
        name=NAME,
        frame=frame[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "IWPC warfarin pharmacogenetics spreadsheet (PharmGKB), raw 68 columns",
            "cleaning": "stable dose reached and dose recorded; age band -> decade number; "
            "indication codes -> labels; consensus genotypes kept; on-dose INR dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="IWPC warfarin pharmacogenetics cohort",
    description=(
        "5,919 warfarin-treated patients with a stable dose (of 6,256) from 22 sites, with "
        "CYP2C9/VKORC1 genotypes; outcome: stable therapeutic dose (mg/week, numeric); "
        "tasks: project sites (default) or races."
    ),
    licence="CC BY-SA 4.0",
    citation=(
        "International Warfarin Pharmacogenetics Consortium. Estimation of the warfarin dose "
        "with clinical and pharmacogenetic data. N Engl J Med 2009;360:753-764. PharmGKB."
    ),
    homepage="https://www.pharmgkb.org/downloads",
    folder="iwpc-warfarin",
    files=read_files(__package__, "iwpc_warfarin.files.json"),
    options=(
        Option(
            "task",
            "site",
            "what one task is: an IWPC project site, or a race (OMB category)",
            choices=tuple(IWPC_TASKS),
        ),
    ),
    loader=_load,
    n_patients=5919,
    n_tasks=22,
)
