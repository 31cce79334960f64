"""PhysioNet/Computing in Cardiology Challenge 2012: ICU mortality, one row per stay.

8,000 adult ICU stays from MIMIC-II (sets A and B, 4,000 each), summarised from the
first 48 hours of the challenge's time series (first, last, lowest, highest and median
vitals; first and last labs; ventilation and urine output) by A. Johnson's challenge
entry, with physiological outlier removal.  120 columns per file.

Spec only, no loader yet.  A loader must decide: the outcome (``In-hospital_death``,
13.8 % in A and 14.2 % in B; or ``Length_of_stay``, ``Survival``); the tasks (ICU type,
one-hot as ``CCU``, ``CSRU``, ``SICU``, all three 0 = MICU); that ``SAPS-I`` and
``SOFA`` are severity scores to compare against, never features; and that -1 or
missing means "not recorded" in ``Age``, ``Gender``, ``Height``, ``Weight``.  Bump
``SPEC.version`` with any change to the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="physionet-2012",
    version=1,
    title="PhysioNet/CinC Challenge 2012 (ICU mortality), per-stay features",
    description=(
        "8,000 adult ICU stays (MIMIC-II, sets A and B) summarised from the first 48 h; "
        "outcome: in-hospital death; tasks: ICU type (MICU, SICU, CSRU, CCU)."
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
    n_patients=8000,
    n_tasks=4,
)
