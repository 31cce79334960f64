"""TCGA-BRCA clinical table as prepared for FLamby's Fed-TCGA-BRCA: breast-cancer survival.

1,096 breast-cancer patients from The Cancer Genome Atlas with 39 binarised clinical
covariates (age, ethnicity, race, AJCC pathologic T/N/M and stage) and overall survival
(event ``E``, 151 deaths; time ``T`` in days).  ``centers.csv`` maps each tissue source
site code to its hospital, country and region; ``train_test_split.csv`` is FLamby's
per-region train/test assignment.

Spec only, no loader yet.  A loader must decide: the outcome (survival, scored by
C-index, or a fixed-horizon binary outcome); the tasks (tissue source site = characters
6-7 of ``pid`` joined to ``centers.csv``, 40 sites, 16 with >= 20 patients; or FLamby's
six regions from ``train_test_split.csv``).  Bump ``SPEC.version`` with any change to
the cohort it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="tcga-brca",
    version=1,
    title="TCGA-BRCA clinical table (FLamby Fed-TCGA-BRCA)",
    description=(
        "1,096 breast-cancer patients, 39 clinical covariates, overall survival (E, T); "
        "tasks: 6 geographic regions of the tissue source sites."
    ),
    licence="TCGA open access (NCI GDC); FLamby preprocessing MIT",
    citation=(
        "The Cancer Genome Atlas Network; du Terrail JO, et al. FLamby: datasets and "
        "benchmarks for cross-silo federated learning in realistic healthcare settings. "
        "NeurIPS 2022 Datasets and Benchmarks."
    ),
    homepage="https://github.com/owkin/FLamby",
    folder="tcga-brca-flamby",
    files=read_files(__package__, "tcga_brca.files.json"),
    n_patients=1096,
    n_tasks=6,
)
