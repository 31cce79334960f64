"""Diabetes 130-US hospitals 1999-2008: inpatient encounters of diabetic patients.

101,766 encounters (71,518 patients) from 130 US hospitals and delivery networks (Cerner
Health Facts), stays of 1-14 days: demographics, admission type and source, length of
stay, counts of labs, procedures, medications and prior visits, three ICD-9 diagnoses,
HbA1c and glucose results, 23 diabetes drugs, and ``readmitted`` (``NO`` / ``>30`` /
``<30``).  ``IDs_mapping.csv`` holds the lookup tables of the three admission id columns.

Spec only, no loader yet.  A loader must decide: the outcome (the usual binary target
is ``readmitted == "<30"``); the tasks (there is no hospital id in the public file, so
condition tasks from the primary diagnosis ``diag_1``, or ``medical_specialty``); and a
split by ``patient_nbr``, since one patient can have several encounters.  ``?`` marks
missing values.  Bump ``SPEC.version`` with any change to the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="diabetes-130",
    version=1,
    title="Diabetes 130-US hospitals 1999-2008 (readmission)",
    description=(
        "101,766 inpatient encounters of diabetic patients (Cerner Health Facts); outcome: "
        "readmission < 30 days; no hospital id, condition tasks from the primary ICD-9 "
        "diagnosis."
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
    n_patients=101766,
)
