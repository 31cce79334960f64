"""Cohorts, schemas, dataset sources and preprocessing."""

# cohort first: metamed.tasks imports metamed.data.cohort while this package initialises.
from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema
from metamed.data.preprocess import Preprocessor, make_tasks, outcome_array
from metamed.data.sources import (
    DATA_DIR_ENV,
    DATASETS,
    DataFile,
    DatasetSource,
    dataset_names,
    get_source,
    load_dataset,
    register_source,
    sha256_file,
    verify,
)
from metamed.data.synthetic import make_synthetic_cohort
from metamed.data.uci_heart import load_uci_heart

__all__ = [
    "CODESET_SEPARATOR",
    "DATASETS",
    "DATA_DIR_ENV",
    "Cohort",
    "DataFile",
    "DatasetSource",
    "Preprocessor",
    "Schema",
    "dataset_names",
    "get_source",
    "load_dataset",
    "load_uci_heart",
    "make_synthetic_cohort",
    "make_tasks",
    "outcome_array",
    "register_source",
    "sha256_file",
    "verify",
]
