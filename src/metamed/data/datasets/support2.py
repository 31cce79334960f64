"""SUPPORT (support2): seriously ill hospitalised adults, one cohort per disease group.

9,105 patients enrolled 1989-1994 at five US medical centres in SUPPORT (Knaus et al., Ann
Intern Med 1995;122:191-203), each in one of eight disease groups, with physiology on day 3
of the study, demographics, functional status, comorbidities, the SUPPORT model's and the
physicians' survival estimates, and the outcomes.  One row per patient; there is no centre
id, so a task is a *disease group* (``dzgroup``: ARF/MOSF with sepsis 3,515 patients down
to cirrhosis 508; the small groups such as coma and colon cancer are the rare targets).
Column meanings follow F. Harrell's description of ``support2`` (hbiostat.org/data).

What this loader does to the raw values, and why:

* The unnamed first column is a row number: dropped.
* ``glucose == 0`` (one patient) is not a living patient's value and becomes missing; an
  albumin above 10 g/dL (29 and 10.9, two patients; plasma albumin stays below about
  6 g/dL) is an entry error and becomes missing.  Zeros of ``meanbp`` (51 patients),
  ``hrt`` (83) and ``resp`` (65) are kept: they are the day-3 worst values of patients in
  arrest or apnoea (about 62 % of them died in hospital), not missing values.
* Missing physiology stays missing.  Harrell suggests filling some labs with a normal
  value (a lab not ordered is probably normal); metamed's preprocessor imputes the
  training median and adds a missing-value indicator, which lets a model learn that
  itself.
* ``sex``, ``race``, ``income`` (four bands) and ``ca`` (cancer: no, yes, metastatic)
  are categorical; ``diabetes`` and ``dementia`` stay 0/1.
* ``dzclass`` (4 classes) is a function of ``dzgroup``: with the default task it would be
  a constant per task, so it is not a feature; with ``task="dzclass"`` the finer
  ``dzgroup`` is a feature.

Baselines, never features (*reference* columns): the study's own scores and estimates,
``sps`` (SUPPORT physiology score), ``aps`` (APACHE III day-3 physiology score),
``surv2m`` and ``surv6m`` (the SUPPORT model's 2- and 6-month survival probabilities) and
``prg2m`` and ``prg6m`` (the physician's estimates of the same).  They summarise the day-3
physiology, mostly as a predicted outcome: a model fed them would learn to copy them.

Leaking columns, dropped on purpose (each recorded after study entry, or encoding an
outcome):

* ``death`` and ``d.time`` (death during follow-up and its time: the 6-month outcome),
  ``hospdead`` (the hospital-death outcome, and nearly the 6-month one);
* ``slos`` (days from study entry to discharge: short stays end in death), ``charges``,
  ``totcst``, ``totmcst`` (costs of the whole stay), ``avtisst`` (therapeutic
  intervention score averaged over days 3-25);
* ``sfdm2`` (functional disability at 2 months), ``dnr`` and ``dnrday`` (the
  do-not-resuscitate order and its day: 2,956 of the 3,195 orders came after study
  entry, and a DNR order is a decision taken in view of the prognosis);
* ``adlsc`` (an imputed, calibrated copy of ``adlp`` and ``adls``, which are kept: its
  imputation model is not documented, so it may have seen the outcomes).

Outcomes (option ``outcome``): ``hospital_death`` (default; ``hospdead``, 2,360 of 9,105,
25.9 %) and ``death_6_months`` (death within 180 days of study entry, the horizon of the
SUPPORT model's 6-month estimate: ``death == 1`` and ``d.time <= 180``; a patient followed
for less than 180 days without dying would have an unknown outcome and be dropped: there is
none).  Tasks (option ``task``): ``dzgroup`` (default, 8 groups) or ``dzclass`` (4).

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metamed.data.cohort import Cohort, Schema
from metamed.data.datasets._clean import outside_to_missing, read_csv
from metamed.data.registry import DatasetSpec, Option, read_files
from metamed.outcomes import BINARY

__all__ = [
    "SPEC",
    "SUPPORT_LEAKING_COLUMNS",
    "SUPPORT_OUTCOMES",
    "SUPPORT_REFERENCE_COLUMNS",
    "SUPPORT_TASKS",
]

NAME = "support2"
FILE = "support2.csv.gz"
#: Horizon of the 6-month outcome, as in the SUPPORT model's 6-month estimate (days).
SIX_MONTHS_DAYS = 180
#: Plasma albumin above this (g/dL) is an entry error (see the module docstring).
MAX_ALBUMIN_G_DL = 10.0

#: Outcome option values.
SUPPORT_OUTCOMES: tuple[str, ...] = ("hospital_death", "death_6_months")
#: Task option values (each is the task column).
SUPPORT_TASKS: tuple[str, ...] = ("dzgroup", "dzclass")
#: The study's scores and survival estimates: baselines, never features.
SUPPORT_REFERENCE_COLUMNS: tuple[str, ...] = ("sps", "aps", "surv2m", "surv6m", "prg2m", "prg6m")
#: Recorded after study entry, or an outcome (the module docstring says why each leaks).
SUPPORT_LEAKING_COLUMNS: tuple[str, ...] = (
    "death",
    "d.time",
    "hospdead",
    "slos",
    "charges",
    "totcst",
    "totmcst",
    "avtisst",
    "sfdm2",
    "dnr",
    "dnrday",
    "adlsc",
)
NUMERIC: tuple[str, ...] = (
    "age",
    "num.co",
    "edu",
    "scoma",
    "hday",
    "diabetes",
    "dementia",
    "meanbp",
    "wblc",
    "hrt",
    "resp",
    "temp",
    "pafi",
    "alb",
    "bili",
    "crea",
    "sod",
    "ph",
    "glucose",
    "bun",
    "urine",
    "adlp",
    "adls",
)
CATEGORICAL: tuple[str, ...] = ("sex", "race", "income", "ca")
_UNITS = {
    "age": "years",
    "edu": "years",
    "hday": "days",
    "meanbp": "mm Hg",
    "wblc": "10^3/uL",
    "hrt": "bpm",
    "resp": "breaths/min",
    "temp": "degC",
    "pafi": "mm Hg",
    "alb": "g/dL",
    "bili": "mg/dL",
    "crea": "mg/dL",
    "sod": "mEq/L",
    "ph": "pH",
    "glucose": "mg/dL",
    "bun": "mg/dL",
    "urine": "mL/day",
}


def _load(folder: Path, *, outcome: str, task: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified ``support2.csv.gz``."""
    columns = (*NUMERIC, *CATEGORICAL, *SUPPORT_TASKS, *SUPPORT_REFERENCE_COLUMNS)
    raw = read_csv(folder / FILE, NAME, (*columns, "hospdead", "death", "d.time"))
    frame = raw[list(columns)].copy()
    frame["glucose"] = frame["glucose"].astype(float).mask(frame["glucose"] == 0)
    frame["alb"] = outside_to_missing(frame["alb"], 0.0, MAX_ALBUMIN_G_DL)
    frame[list(NUMERIC)] = frame[list(NUMERIC)].astype(float)
    for col in (*CATEGORICAL, *SUPPORT_TASKS):
        frame[col] = frame[col].astype(object)

    if outcome == "hospital_death":
        frame[outcome] = raw["hospdead"].astype(np.int64)
    else:
        died = raw["death"] == 1
        known = died | (raw["d.time"] >= SIX_MONTHS_DAYS)  # followed long enough, or died
        frame[outcome] = (died & (raw["d.time"] <= SIX_MONTHS_DAYS)).astype(np.int64)
        frame = frame[known.to_numpy()]

    # dzclass is a function of dzgroup: a feature only in the other direction.
    finer = ("dzgroup",) if task == "dzclass" else ()
    schema = Schema(
        outcome=outcome,
        numeric=NUMERIC,
        categorical=(*CATEGORICAL, *finer),
        group=(task,),
        reference=SUPPORT_REFERENCE_COLUMNS,
        outcome_type=BINARY,
        units=dict(_UNITS),
    )
    return Cohort(
        name=NAME,
        frame=frame.reset_index(drop=True)[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "SUPPORT support2 (Vanderbilt Biostatistics public file)",
            "cleaning": "glucose 0 and albumin > 10 g/dL -> missing; study scores and survival "
            "estimates kept as reference columns; follow-up, cost, DNR and length-of-stay "
            "columns dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="SUPPORT (support2) seriously ill hospitalised adults",
    description=(
        "9,105 patients in 8 disease groups at five US centres (1989-1994); outcomes: "
        "hospital death or death within 6 months; tasks: disease groups (or 4 classes). "
        "The SUPPORT scores and model / physician survival estimates are reference "
        "columns, never features."
    ),
    licence="CC BY 4.0",
    citation=(
        "Knaus WA, Harrell FE, Lynn J, et al. The SUPPORT prognostic model: objective "
        "estimates of survival for seriously ill hospitalized adults. Ann Intern Med "
        "1995;122:191-203."
    ),
    homepage="https://hbiostat.org/data/",
    folder="support2",
    files=read_files(__package__, "support2.files.json"),
    options=(
        Option(
            "outcome",
            "hospital_death",
            "death in hospital, or death within 180 days of study entry",
            choices=SUPPORT_OUTCOMES,
        ),
        Option(
            "task",
            "dzgroup",
            "what one task is: a disease group (8) or a disease class (4)",
            choices=SUPPORT_TASKS,
        ),
    ),
    loader=_load,
    n_patients=9105,
    n_tasks=8,
)
