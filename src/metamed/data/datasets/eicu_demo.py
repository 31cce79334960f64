"""eICU Collaborative Research Database demo v2.0: one row per ICU stay, 186 hospitals.

2,520 ICU unit stays (1,841 patients), 2014-2015, from the Philips eICU tele-ICU
programme (ODbL 1.0).  The loader joins four of the demo's tables on
``patientunitstayid`` and one on ``hospitalid``: ``patient`` (one row per stay:
demographics, admission, discharge), ``hospital`` (region, teaching status, beds),
``apacheapsvar`` (APACHE IV day-1 physiology), ``apachepredvar`` (APACHE covariates:
comorbidities, ventilation, elective surgery) and ``apachepatientresult`` (APACHE's
own predictions, kept as reference scores only).  Column meanings follow the eICU-CRD
table documentation (eicu-crd.mit.edu/eicutables/...).  Every stay is kept, with or
without APACHE data (315 stays have none: their APACHE features are missing).

What this loader does to the raw values, and why:

* **-1 means "not measured"** in ``apacheapsvar`` and ``apachepredvar`` (the eICU
  documentation: "set to -1 when not present"), never a real value: every -1 there
  becomes missing (e.g. 1,800 of 2,205 ``pao2``, 1,140 ``urine``), so that a model
  never reads a pH or a temperature of -1.
* ``age`` is text: "> 89" (ages above 89 are masked, HIPAA) becomes 90, the lower bound
  of what it means; a blank age is missing.
* ``admissionheight`` outside 100-250 cm (0.3, 15.2, 600 and heights such as 66-91 that
  look like inches) and ``admissionweight`` outside 20-350 kg (0.5, 515) are entry
  errors, so they become missing.
* ``hours_in_hospital_before_icu`` is ``-hospitaladmitoffset / 60`` (the offset is in
  minutes from ICU admission, negative when the hospital admission came first); the 15
  positive offsets (hospital admission *after* the ICU admission) cannot be true and
  become missing.
* ``teachingstatus`` (True/False) becomes 0/1; ``region`` and ``numbedscategory``
  (missing for 18 and 28 hospitals) are categorical with a missing level.
* From ``apachepredvar`` only what no other table holds is kept (comorbidities,
  thrombolytics, elective surgery, ventilation and intubation on day 1, CABG details,
  ejection fraction, AMI location).  Its copies of age, gender, GCS, PaO2, FiO2,
  creatinine, admission source, diagnosis and visit number repeat ``patient`` and
  ``apacheapsvar`` and are dropped; ``sicuday``, ``saps3*``, ``teachtype``, ``region``,
  ``managementsystem`` and ``var03hspxlos`` are documented as "set to default value" or
  "not used" (constant here) and ``bedcount`` is undocumented, so they are dropped too.
* Identifiers are never inputs: ``patientunitstayid``, ``patienthealthsystemstayid``
  and ``wardid`` (a ward names its hospital) are dropped; ``hospitalid`` and
  ``uniquepid`` (the patient: 1,841 patients, 19 of them seen at two hospitals) are
  group columns, so a protocol can keep one patient's stays together.
* Clock times (``*time24``) are dropped: the demo has no dates, and time of day is how
  the unit runs, not the patient's state.

Leaking columns, dropped on purpose (each is recorded at or after discharge, or
encodes the outcome):

* ``hospitaldischargestatus`` (the mortality outcome itself), ``unitdischargestatus``
  (ICU death implies hospital death), ``hospitaldischargelocation`` and
  ``unitdischargelocation`` (both have a "Death" value), ``apachepredvar.diedinhospital``
  (the outcome again) and ``apachepredvar.dischargelocation``.
* ``unitdischargeoffset`` (the ICU length of stay, hence the > 3 days outcome),
  ``hospitaldischargeoffset``, ``hospitaldischargeyear``, ``dischargeweight`` and every
  ``actual*`` / ``unabridged*`` column of ``apachepatientresult`` (observed ICU and
  hospital mortality, length of stay and ventilation days).
* APACHE IVa's predictions and scores are never features: they are a clinical model's
  output (the baseline to beat), kept as *reference* columns, missing where APACHE
  classed the stay non-predictive (-1; 155 of the 1,838 scored stays):
  ``apache_iva_pred_hospital_mortality``, ``apache_iva_pred_icu_los_days``,
  ``apache_iva_score`` and ``apache_iva_aps`` (acute physiology score).  The APACHE IV
  rows (the older equation, a second row per stay) are not used.

Outcomes (option ``outcome``):

* ``hospital_mortality`` (default): ``hospitaldischargestatus == "Expired"``.  The 28
  stays whose discharge status is blank are dropped (an unknown outcome cannot be
  scored), leaving 2,492 stays, 212 deaths (8.5 %).  Several ICU stays of one hospital
  admission share this outcome.
* ``icu_stay_over_3_days``: ``unitdischargeoffset > 3 * 24 * 60`` minutes; all 2,520
  stays, 549 (21.8 %).  A patient who dies in the ICU within 3 days counts as 0 (the stay
  did not exceed 3 days), as the outcome is defined.

Tasks (option ``task``): ``hospital`` (default; ``hospitalid``, 186 hospitals of 10-40
stays, only 11 with 20 or more: the extreme few-shot regime), ``region`` (Midwest,
Northeast, South, West; the 210 stays at the 18 hospitals without a region are dropped,
as an unknown region is not one site family) or ``unit_type`` (``unittype``, 8 ICU types).
The task column is the first group column; ``region`` and ``unittype`` are features
whenever they are not the task.

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.datasets._clean import outside_to_missing, read_csv, sentinel_to_missing
from metamed.data.registry import DatasetSpec, Option, read_files
from metamed.outcomes import BINARY

__all__ = [
    "APACHE_SENTINEL",
    "APSVAR_COLUMNS",
    "EICU_LEAKING_COLUMNS",
    "EICU_OUTCOMES",
    "EICU_REFERENCE_COLUMNS",
    "EICU_TASKS",
    "EICU_UNITS",
    "PATIENT_CATEGORICAL",
    "PATIENT_NUMERIC",
    "PREDVAR_CATEGORICAL",
    "PREDVAR_COLUMNS",
    "SPEC",
    "stay_table",
]

NAME = "eicu-demo"

#: eICU's code for "not measured" in the APACHE tables (eICU-CRD documentation).
APACHE_SENTINEL = -1.0
#: Minutes in the 3 days of the ``icu_stay_over_3_days`` outcome.
ICU_STAY_THRESHOLD_MIN = 3 * 24 * 60
#: Masked ages ("> 89", HIPAA) become the lower bound of what they mean.
MASKED_AGE_YEARS = 90.0
#: Plausible adult ranges; values outside are entry errors (see the module docstring).
HEIGHT_CM_RANGE = (100.0, 250.0)
WEIGHT_KG_RANGE = (20.0, 350.0)

#: Outcome option value -> outcome column.
EICU_OUTCOMES: tuple[str, ...] = ("hospital_mortality", "icu_stay_over_3_days")
#: Task option value -> task column.
EICU_TASKS: dict[str, str] = {"hospital": "hospitalid", "region": "region", "unit_type": "unittype"}

#: Columns read from ``patient.csv.gz`` (others in the file are not read).
PATIENT_COLUMNS: tuple[str, ...] = (
    "patientunitstayid",
    "uniquepid",
    "hospitalid",
    "gender",
    "age",
    "ethnicity",
    "apacheadmissiondx",
    "admissionheight",
    "admissionweight",
    "hospitaladmitoffset",
    "hospitaladmitsource",
    "unittype",
    "unitadmitsource",
    "unitvisitnumber",
    "unitstaytype",
    "hospitaldischargestatus",
    "unitdischargeoffset",
)
HOSPITAL_COLUMNS: tuple[str, ...] = ("hospitalid", "numbedscategory", "teachingstatus", "region")
#: APACHE IV day-1 physiology (worst values of the first APACHE day).
APSVAR_COLUMNS: tuple[str, ...] = (
    "intubated",
    "vent",
    "dialysis",
    "eyes",
    "motor",
    "verbal",
    "meds",
    "urine",
    "wbc",
    "temperature",
    "respiratoryrate",
    "sodium",
    "heartrate",
    "meanbp",
    "ph",
    "hematocrit",
    "creatinine",
    "albumin",
    "pao2",
    "pco2",
    "bun",
    "glucose",
    "bilirubin",
    "fio2",
)
#: APACHE covariates no other table holds (0/1 flags unless noted).
PREDVAR_COLUMNS: tuple[str, ...] = (
    "thrombolytics",
    "aids",
    "hepaticfailure",
    "lymphoma",
    "metastaticcancer",
    "leukemia",
    "immunosuppression",
    "cirrhosis",
    "diabetes",
    "electivesurgery",
    "activetx",
    "readmit",
    "ima",
    "midur",
    "ventday1",
    "oobventday1",
    "oobintubday1",
    "graftcount",
    "ejectfx",
)
#: AMI location code (1-7, labels not documented): categorical.
PREDVAR_CATEGORICAL: tuple[str, ...] = ("amilocation",)
#: ``apachepatientresult`` column -> reference column (APACHE IVa rows only).
REFERENCE_SOURCES: dict[str, str] = {
    "predictedhospitalmortality": "apache_iva_pred_hospital_mortality",
    "predictediculos": "apache_iva_pred_icu_los_days",
    "apachescore": "apache_iva_score",
    "acutephysiologyscore": "apache_iva_aps",
}
EICU_REFERENCE_COLUMNS: tuple[str, ...] = tuple(REFERENCE_SOURCES.values())

#: Columns of the source tables that are measured at or after discharge, or encode an
#: outcome: never in the cohort (the module docstring says why each one leaks).
EICU_LEAKING_COLUMNS: tuple[str, ...] = (
    "hospitaldischargestatus",
    "unitdischargestatus",
    "hospitaldischargelocation",
    "unitdischargelocation",
    "unitdischargeoffset",
    "hospitaldischargeoffset",
    "hospitaldischargeyear",
    "dischargeweight",
    "diedinhospital",
    "dischargelocation",
    "actualhospitalmortality",
    "actualicumortality",
    "actualiculos",
    "actualhospitallos",
    "actualventdays",
    "unabridgedunitlos",
    "unabridgedhosplos",
    "unabridgedactualventdays",
    *REFERENCE_SOURCES,
)

PATIENT_NUMERIC = (
    "age",
    "admissionheight",
    "admissionweight",
    "hours_in_hospital_before_icu",
    "unitvisitnumber",
    "teachingstatus",
)
PATIENT_CATEGORICAL = (
    "gender",
    "ethnicity",
    "apacheadmissiondx",
    "hospitaladmitsource",
    "unitadmitsource",
    "unitstaytype",
    "numbedscategory",
)
EICU_UNITS = {
    "age": "years",
    "admissionheight": "cm",
    "admissionweight": "kg",
    "hours_in_hospital_before_icu": "h",
    "urine": "mL/day",
    "wbc": "10^3/uL",
    "temperature": "degC",
    "respiratoryrate": "breaths/min",
    "sodium": "mEq/L",
    "heartrate": "bpm",
    "meanbp": "mm Hg",
    "hematocrit": "%",
    "creatinine": "mg/dL",
    "albumin": "g/dL",
    "pao2": "mm Hg",
    "pco2": "mm Hg",
    "bun": "mg/dL",
    "glucose": "mg/dL",
    "bilirubin": "mg/dL",
    "fio2": "%",
    "ejectfx": "%",
    "apache_iva_pred_icu_los_days": "days",
}


def _age_years(age: pd.Series) -> pd.Series:
    text = age.astype("string").str.strip()
    return pd.to_numeric(text.replace("> 89", str(MASKED_AGE_YEARS)), errors="raise")


def _apache_tables(folder: Path) -> pd.DataFrame:
    """APACHE physiology, covariates and IVa reference scores, one row per scored stay."""
    key = "patientunitstayid"
    aps = read_csv(folder / "apacheapsvar.csv.gz", NAME, (key, *APSVAR_COLUMNS))
    aps = aps[[key, *APSVAR_COLUMNS]]
    pred_cols = (*PREDVAR_COLUMNS, *PREDVAR_CATEGORICAL)
    pred = read_csv(folder / "apachepredvar.csv.gz", NAME, (key, *pred_cols))[[key, *pred_cols]]
    result = read_csv(
        folder / "apachepatientresult.csv.gz", NAME, (key, "apacheversion", *REFERENCE_SOURCES)
    )
    iva = result.loc[result["apacheversion"] == "IVa", [key, *REFERENCE_SOURCES]]
    iva = iva.rename(columns=REFERENCE_SOURCES)
    aps = sentinel_to_missing(aps, APSVAR_COLUMNS, APACHE_SENTINEL)
    pred = sentinel_to_missing(pred, pred_cols, APACHE_SENTINEL)
    iva = sentinel_to_missing(iva, EICU_REFERENCE_COLUMNS, APACHE_SENTINEL)
    pred["amilocation"] = pred["amilocation"].map(
        lambda v: np.nan if pd.isna(v) else f"code_{int(v)}"
    )
    tables = aps.merge(pred, on=key, how="outer", validate="one_to_one")
    return tables.merge(iva, on=key, how="outer", validate="one_to_one")


def stay_table(folder: Path, outcome: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One cleaned row per ICU stay with the ``outcome`` column (the rules of this module).

    Shared with the ``eicu-demo-diagnoses`` dataset (same stays, other tasks).

    Parameters
    ----------
    folder : Path
        The verified demo tables.
    outcome : str
        One of :data:`EICU_OUTCOMES`; for ``hospital_mortality`` the stays without a
        discharge status are left out.
    extra : tuple of str
        Columns of ``patient.csv.gz`` to read besides :data:`PATIENT_COLUMNS` (e.g. for
        ordering a patient's stays); they are never features here.
    """
    columns = [*PATIENT_COLUMNS, *(c for c in extra if c not in PATIENT_COLUMNS)]
    patient = read_csv(folder / "patient.csv.gz", NAME, columns)[columns]
    hospital = read_csv(folder / "hospital.csv.gz", NAME, HOSPITAL_COLUMNS)
    frame = patient.merge(
        hospital[list(HOSPITAL_COLUMNS)], on="hospitalid", how="left", validate="many_to_one"
    )
    frame = frame.merge(
        _apache_tables(folder), on="patientunitstayid", how="left", validate="one_to_one"
    )

    frame["age"] = _age_years(frame["age"])
    frame["admissionheight"] = outside_to_missing(frame["admissionheight"], *HEIGHT_CM_RANGE)
    frame["admissionweight"] = outside_to_missing(frame["admissionweight"], *WEIGHT_KG_RANGE)
    hours_before = -frame["hospitaladmitoffset"].astype(float) / 60.0
    frame["hours_in_hospital_before_icu"] = hours_before.where(hours_before >= 0)
    frame["teachingstatus"] = frame["teachingstatus"].astype(float)

    if outcome == "hospital_mortality":
        status = frame["hospitaldischargestatus"]
        frame = frame[status.notna()].copy()
        frame[outcome] = (frame["hospitaldischargestatus"] == "Expired").astype(np.int64)
    else:
        stay_min = frame["unitdischargeoffset"].astype(float)
        frame[outcome] = (stay_min > ICU_STAY_THRESHOLD_MIN).astype(np.int64)
    return frame


def _load(folder: Path, *, outcome: str, task: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified demo tables."""
    frame = stay_table(folder, outcome)
    task_col = EICU_TASKS[task]
    if task_col == "region":
        frame = frame[frame["region"].notna()]
    site_level = tuple(c for c in ("region", "unittype") if c != task_col)
    group = tuple(dict.fromkeys((task_col, "hospitalid", "uniquepid")))
    schema = Schema(
        outcome=outcome,
        numeric=(*PATIENT_NUMERIC, *APSVAR_COLUMNS, *PREDVAR_COLUMNS),
        categorical=(*PATIENT_CATEGORICAL, *site_level, *PREDVAR_CATEGORICAL),
        group=group,
        reference=EICU_REFERENCE_COLUMNS,
        outcome_type=BINARY,
        units=dict(EICU_UNITS),
    )
    frame = frame.reset_index(drop=True)[list(schema.columns)]
    return Cohort(
        name=NAME,
        frame=frame,
        schema=schema,
        provenance={
            "source": "eICU-CRD demo v2.0: patient, hospital, apacheapsvar, apachepredvar, "
            "apachepatientresult (APACHE IVa rows, reference scores only)",
            "cleaning": "APACHE -1 -> missing; age '> 89' -> 90; height outside 100-250 cm and "
            "weight outside 20-350 kg -> missing; discharge and length-of-stay columns dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="eICU Collaborative Research Database demo v2.0",
    description=(
        "2,520 ICU unit stays from 186 US hospitals (2014-2015), one row per stay with "
        "APACHE IV day-1 physiology; outcomes: in-hospital mortality or ICU stay > 3 days; "
        "tasks: hospitals (default), regions or ICU types. APACHE IVa predictions are "
        "reference scores, never features."
    ),
    licence="ODbL 1.0",
    citation=(
        "Johnson A, Pollard T, Badawi O, Raffa J. eICU Collaborative Research Database Demo "
        "(v2.0). PhysioNet. Pollard TJ, Johnson AEW, Raffa JD, et al. The eICU Collaborative "
        "Research Database. Sci Data 2018;5:180178. Goldberger AL, et al. PhysioBank, "
        "PhysioToolkit, and PhysioNet. Circulation 2000;101:e215-e220."
    ),
    homepage="https://physionet.org/content/eicu-crd-demo/2.0/",
    folder="eicu-crd-demo",
    files=read_files(__package__, "eicu_demo.files.json"),
    options=(
        Option(
            "outcome",
            "hospital_mortality",
            "in-hospital death, or an ICU stay longer than 3 days",
            choices=EICU_OUTCOMES,
        ),
        Option(
            "task",
            "hospital",
            "what one task is: a hospital, a US region or an ICU type",
            choices=tuple(EICU_TASKS),
        ),
    ),
    loader=_load,
    n_patients=2492,
    n_tasks=186,
)
