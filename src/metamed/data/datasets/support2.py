"""SUPPORT (support2): seriously ill hospitalised adults in eight disease groups.

9,105 patients enrolled 1989-1994 at five US medical centres, each in one of eight
disease groups, with day-3 physiology, demographics, functional status, comorbidity
counts, costs, the SUPPORT model's survival estimates and the outcomes (hospital death,
death during follow-up with its time, functional disability at 2 months).  48 columns;
the first, unnamed, is a row number.

Spec only, no loader yet.  A loader must decide: the outcome (``hospdead``, or
``death`` with ``d.time`` as survival); the tasks (``dzgroup``, 8 groups with
hospital-death rates from 6 % to 61 %, or ``dzclass``; there is no centre id); and the
columns that would leak: ``surv2m``, ``surv6m``, ``prg2m``, ``prg6m`` (model and
physician estimates) and ``dnr``, ``dnrday`` (later decisions) are never features.
Bump ``SPEC.version`` with any change to the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="support2",
    version=1,
    title="SUPPORT (support2) seriously ill hospitalised adults",
    description=(
        "9,105 patients in 8 disease groups at five US centres (1989-1994); outcomes: "
        "hospital death, death with follow-up time; tasks: disease groups."
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
    n_patients=9105,
    n_tasks=8,
)
