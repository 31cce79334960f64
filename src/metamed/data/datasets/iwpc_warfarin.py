"""IWPC warfarin pharmacogenetics cohort: stable warfarin dose from 22 project sites.

6,256 warfarin-treated patients from the 22 sites of the International Warfarin
Pharmacogenetics Consortium (nine countries, four continents): demographics, race,
height, weight, indication, comorbidities, interacting co-medications, CYP2C9 and
VKORC1 genotypes, target INR, and the stable therapeutic dose (mg/week).  The raw
spreadsheet, no cleaning (68 columns with their original names).

Spec only, no loader yet.  A loader must decide: the cohort rule (the usual IWPC cohort
keeps patients who reached a stable dose with the dose recorded); the outcome
(``Therapeutic Dose of Warfarin``, mg/week, a numeric target); the tasks (``Project
Site``, 63-828 patients each; ``Race (OMB)`` is the other strong shift); ``Age`` is a
decade band as text; the VKORC1 column name holds several consecutive spaces.  Bump
``SPEC.version`` with any change to the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="iwpc-warfarin",
    version=1,
    title="IWPC warfarin pharmacogenetics cohort",
    description=(
        "6,256 warfarin-treated patients from 22 sites with CYP2C9/VKORC1 genotypes; "
        "outcome: stable therapeutic dose (mg/week); tasks: project sites."
    ),
    licence="CC BY-SA 4.0",
    citation=(
        "International Warfarin Pharmacogenetics Consortium. Estimation of the warfarin dose "
        "with clinical and pharmacogenetic data. N Engl J Med 2009;360:753-764. PharmGKB."
    ),
    homepage="https://www.pharmgkb.org/downloads",
    folder="iwpc-warfarin",
    files=read_files(__package__, "iwpc_warfarin.files.json"),
    n_patients=6256,
    n_tasks=22,
)
