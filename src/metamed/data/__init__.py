"""Cohorts, schemas, dataset sources and preprocessing."""

from metamed.data.cohort import CODESET_SEPARATOR, Cohort, Schema

__all__ = ["CODESET_SEPARATOR", "Cohort", "Schema"]
