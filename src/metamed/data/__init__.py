"""Cohorts, schemas, dataset sources and preprocessing."""

# cohort first: metamed.tasks imports metamed.data.cohort while this package initialises.
from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema
from metamed.data.fetch import fetch_dataset
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
from metamed.data.table import cohort_from_table, infer_schema, load_table
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
    "cohort_from_table",
    "dataset_names",
    "fetch_dataset",
    "get_source",
    "infer_schema",
    "load_dataset",
    "load_table",
    "load_uci_heart",
    "make_synthetic_cohort",
    "make_tasks",
    "outcome_array",
    "register_source",
    "sha256_file",
    "verify",
]
