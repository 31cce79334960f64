"""eICU Collaborative Research Database demo v2.0: ICU stays from 186 US hospitals.

2,520 ICU unit stays (1,841 patients), 2014-2015, from the Philips eICU tele-ICU
programme, as relational tables: ``patient`` (one row per stay, ``hospitalid``,
``unittype``, discharge status, length of stay), ``hospital`` (region, teaching status,
beds), APACHE IV physiology and predictions, diagnoses, past history, medications,
infusions, intake/output, nursing and respiratory charting, notes and treatments.  The
``lab``, ``vitalperiodic`` and ``nursecharting`` tables are absent (too large for the
source snapshot).

Spec only, no loader yet.  A loader must decide: the outcome (hospital or ICU mortality
from ``patient.hospitaldischargestatus`` / ``apachepatientresult``, about 8.5 %
expired, or a length-of-stay threshold); the tasks (``hospitalid``, at most 40 stays
each, so naturally few-shot; or ``hospital.region``, ``unittype``, admission
diagnosis); that ``apachepatientresult`` has two rows per stay (APACHE IV and IVa) and
that its predictions are baselines, never features; ``age`` is text ("> 89").  Bump
``SPEC.version`` with any change to the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="eicu-demo",
    version=1,
    title="eICU Collaborative Research Database demo v2.0",
    description=(
        "2,520 ICU unit stays from 186 US hospitals (2014-2015); outcomes: hospital / ICU "
        "mortality, length of stay; tasks: hospitals, regions, ICU types."
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
    n_patients=2520,
    n_tasks=186,
)
