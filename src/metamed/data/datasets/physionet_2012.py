"""PhysioNet/Computing in Cardiology Challenge 2012: ICU mortality, one row per stay.

8,000 adult ICU stays from MIMIC-II in two disjoint sets of 4,000 (A, the challenge's
training set, and B), each of at least 48 hours; the outcome is in-hospital death
(ODC-By 1.0).  The files are not the challenge's raw time series but A. Johnson's
per-stay summary of the first 48 hours (github.com/alistairewj/challenge2012,
``prepare-data.ipynb``, which also removed physiological outliers): for 11 vitals and
GCS the first, last, lowest, highest and median value; for 24 labs and weight the first
and last; mechanical-ventilation start, duration and whether it ran in the last 8 hours;
and the static descriptors.  metamed cannot recompute these summaries (the raw series
are not among the files), so it reads them as published; the names are his.

What this loader does to the raw values, and why:

* The one-hot ``CCU``, ``CSRU`` and ``SICU`` columns (all three 0 = medical ICU) become
  one group column ``icu_type`` with the challenge's labels (ICUType 1 = CCU, coronary
  care; 2 = CSRU, cardiac surgery recovery; 3 = MICU, medical; 4 = SICU, surgical).  It is
  the task and, like every group column, never an input.
* ``set`` (``a`` or ``b``) records which challenge set a stay comes from: a group column,
  never an input, so that a protocol can meta-train on set A and evaluate on set B (an
  independent cohort).  Option ``sets`` (default both) chooses the sets loaded.
* ``UrineOutputSum`` is renamed ``MechVentRecordCount``: the extraction summed the
  ``MechVent`` records (1 per charted ventilation) instead of the urine volumes, which is
  why its values run 1-44 and it is missing exactly where ``MechVentStartTime`` is.  It
  is what it is, a count of ventilation records in the 48 hours, and it is named so.
* ``Height`` outside 100-250 cm (12 stays: 286-392 cm, 3,960 and 11,220, unit errors
  the extraction's own fixes left) is not a human height and becomes missing.
* ``Gender`` is 0 = female, 1 = male (challenge documentation); 8 stays have none.
  ``Age`` runs 15-90 years (14 stays are under 18), kept as recorded.
* ``recordid`` (the stay identifier) is dropped.

Leaking columns, dropped on purpose: ``Length_of_stay`` (days from ICU admission to
the end of the hospital stay, known only at discharge) and ``Survival`` (days from ICU
admission to death, -1 when alive: with ``Length_of_stay`` it spells out in-hospital
death).  ``SAPS-I`` and ``SOFA`` are severity scores (a clinical baseline, not a
patient measurement): they are kept as *reference* columns (-1, not computed, becomes
missing: 190 and 144 stays in A, 162 and 137 in B), never features.  In these files
no descriptor holds -1 any more (the extraction made them missing already); the rule
stays for a copy that still has them.

Tasks: 4 ICU types (set A: MICU 1,481, SICU 1,068, CSRU 874, CCU 577 stays; in-hospital
death from 4.9 % in CSRU to 18.6 % in MICU).  Outcome ``in_hospital_death``: 554 of
4,000 in A (13.9 %), 568 of 4,000 in B (14.2 %).

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
from metamed.errors import MetamedValueError
from metamed.outcomes import BINARY

__all__ = [
    "PHYSIONET_2012_ICU_TYPES",
    "PHYSIONET_2012_LEAKING_COLUMNS",
    "PHYSIONET_2012_REFERENCE_COLUMNS",
    "PHYSIONET_2012_SETS",
    "SPEC",
]

NAME = "physionet-2012"

#: Challenge set -> file.
PHYSIONET_2012_SETS: dict[str, str] = {
    "a": "PhysionetChallenge2012-set-a.csv.gz",
    "b": "PhysionetChallenge2012-set-b.csv.gz",
}
#: One-hot column of each ICU type; MICU is the one with all three 0.
ICU_TYPE_ONE_HOT: dict[str, str] = {"CCU": "CCU", "CSRU": "CSRU", "SICU": "SICU"}
PHYSIONET_2012_ICU_TYPES: tuple[str, ...] = ("CCU", "CSRU", "MICU", "SICU")
PHYSIONET_2012_REFERENCE_COLUMNS: tuple[str, ...] = ("SAPS-I", "SOFA")
#: Known only at discharge, or spelling out the outcome (see the module docstring).
PHYSIONET_2012_LEAKING_COLUMNS: tuple[str, ...] = ("Length_of_stay", "Survival")
OUTCOME = "in_hospital_death"
RAW_OUTCOME = "In-hospital_death"
#: Not a score or a measurement: the challenge's code for "not computed / not recorded".
NOT_RECORDED = -1.0
HEIGHT_CM_RANGE = (100.0, 250.0)
#: The mislabelled column and the name that says what it holds (see the docstring).
RENAMED = {"UrineOutputSum": "MechVentRecordCount"}

_NOT_FEATURES = (
    "recordid",
    RAW_OUTCOME,
    *PHYSIONET_2012_REFERENCE_COLUMNS,
    *PHYSIONET_2012_LEAKING_COLUMNS,
    *ICU_TYPE_ONE_HOT.values(),
)
_STATIC = ("Age", "Gender", "Height", "Weight")
_UNITS = {
    "Age": "years",
    "Height": "cm",
    "Weight": "kg",
    "MechVentStartTime": "min",
    "MechVentDuration": "min",
}


def _icu_type(frame: pd.DataFrame, path: Path) -> pd.Series:
    one_hot = frame[list(ICU_TYPE_ONE_HOT.values())]
    if not one_hot.isin([0, 1]).all().all() or (one_hot.sum(axis=1) > 1).any():
        raise MetamedValueError(
            f"{path.name}: the ICU-type columns CCU, CSRU, SICU must be 0/1 with at most "
            "one 1 per stay (all 0 = MICU)."
        )
    icu = pd.Series("MICU", index=frame.index, dtype=object)
    for label, col in ICU_TYPE_ONE_HOT.items():
        icu[frame[col] == 1] = label
    return icu


def _read_set(folder: Path, name: str) -> pd.DataFrame:
    path = folder / PHYSIONET_2012_SETS[name]
    raw = read_csv(path, NAME, (*_NOT_FEATURES, *_STATIC, *RENAMED))
    if raw[RAW_OUTCOME].isna().any() or not raw[RAW_OUTCOME].isin([0, 1]).all():
        raise MetamedValueError(f"{path.name}: '{RAW_OUTCOME}' must be 0/1 in every row.")
    features = raw.drop(columns=list(_NOT_FEATURES)).rename(columns=RENAMED).astype(float)
    features = sentinel_to_missing(features, _STATIC, NOT_RECORDED)
    features["Height"] = outside_to_missing(features["Height"], *HEIGHT_CM_RANGE)
    reference = raw[list(PHYSIONET_2012_REFERENCE_COLUMNS)].astype(float)
    reference = sentinel_to_missing(reference, PHYSIONET_2012_REFERENCE_COLUMNS, NOT_RECORDED)
    roles = pd.DataFrame(
        {"icu_type": _icu_type(raw, path), "set": name, OUTCOME: raw[RAW_OUTCOME].astype(np.int64)},
        index=raw.index,
    )
    return pd.concat([features, reference, roles], axis=1)


def _load(folder: Path, *, sets: tuple[str, ...]) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the two verified set files."""
    frames = [_read_set(folder, name) for name in sets]
    columns = list(frames[0].columns)
    for name, frame in zip(sets, frames, strict=True):
        if list(frame.columns) != columns:
            raise MetamedValueError(
                f"{PHYSIONET_2012_SETS[name]}: its columns differ from "
                f"{PHYSIONET_2012_SETS[sets[0]]}'s; both sets must share one layout."
            )
    frame = pd.concat(frames, ignore_index=True)
    not_features = {"icu_type", "set", OUTCOME, *PHYSIONET_2012_REFERENCE_COLUMNS}
    schema = Schema(
        outcome=OUTCOME,
        numeric=tuple(c for c in columns if c not in not_features),
        group=("icu_type", "set"),
        reference=PHYSIONET_2012_REFERENCE_COLUMNS,
        outcome_type=BINARY,
        units=dict(_UNITS),
    )
    return Cohort(
        name=NAME,
        frame=frame[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "PhysioNet/CinC Challenge 2012 sets "
            + ", ".join(s.upper() for s in sets)
            + ", per-stay 48 h summaries by A. Johnson (alistairewj/challenge2012)",
            "cleaning": "ICU-type one-hot -> icu_type; -1 -> missing in Age, Gender, Height, "
            "Weight, SAPS-I, SOFA; Height outside 100-250 cm -> missing; UrineOutputSum "
            "renamed MechVentRecordCount; Length_of_stay and Survival dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="PhysioNet/CinC Challenge 2012 (ICU mortality), per-stay features",
    description=(
        "8,000 adult ICU stays (MIMIC-II, sets A and B) summarised from the first 48 h; "
        "outcome: in-hospital death; tasks: ICU type (MICU, SICU, CSRU, CCU); the set is a "
        "group column so that set A can train and set B evaluate. SAPS-I and SOFA are "
        "reference scores, never features."
    ),
    licence="ODC-By 1.0",
    citation=(
        "Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality of "
        "ICU patients: the PhysioNet/Computing in Cardiology Challenge 2012. Comput Cardiol "
        "2012;39:245-248. Per-stay features: Johnson AEW, github.com/alistairewj/challenge2012."
    ),
    homepage="https://physionet.org/content/challenge-2012/1.0.0/",
    folder="physionet-challenge-2012",
    files=read_files(__package__, "physionet_2012.files.json"),
    options=(
        Option(
            "sets",
            tuple(PHYSIONET_2012_SETS),
            "challenge sets loaded (a: the training set, b: the second 4,000 stays)",
            choices=tuple(PHYSIONET_2012_SETS),
            multiple=True,
        ),
    ),
    loader=_load,
    n_patients=8000,
    n_tasks=4,
)
