"""Cohorts, schemas, the dataset registry and its datasets, preprocessing."""

# Importing ``datasets`` registers every dataset's spec (the registry itself knows none).
from metamed.data import datasets
from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema
from metamed.data.datasets.synthetic import make_synthetic_cohort
from metamed.data.datasets.uci_heart import load_uci_heart
from metamed.data.fetch import fetch_dataset
from metamed.data.preprocess import Preprocessor, outcome_array
from metamed.data.registry import (
    DATA_DIR_ENV,
    DATASETS,
    DataFile,
    DatasetSpec,
    Option,
    dataset_names,
    get_source,
    load_dataset,
    register_dataset,
    sha256_file,
    verify,
)
from metamed.data.table import cohort_from_table, infer_schema, load_table

__all__ = [
    "CODESET_SEPARATOR",
    "DATASETS",
    "DATA_DIR_ENV",
    "Cohort",
    "DataFile",
    "DatasetSpec",
    "Option",
    "Preprocessor",
    "Schema",
    "cohort_from_table",
    "dataset_names",
    "datasets",
    "fetch_dataset",
    "get_source",
    "infer_schema",
    "load_dataset",
    "load_table",
    "load_uci_heart",
    "make_synthetic_cohort",
    "outcome_array",
    "register_dataset",
    "sha256_file",
    "verify",
]
