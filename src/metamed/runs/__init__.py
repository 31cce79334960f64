"""The application layer: what orchestrates a whole run and writes its files.

``metamed.evaluation`` computes (splits, jobs, scores, statistics) and writes nothing;
this package loads the data, runs the jobs, and puts tables, config and report on disk.
The command line (:mod:`metamed.cli`) is a thin shell over it.
"""

from metamed.runs.benchmark import (
    BenchmarkOutputs,
    execute,
    load_cohort,
    make_methods,
    make_splits,
    read_spec,
    run_benchmark,
    run_spec,
)
from metamed.runs.dose import DoseOutputs, run_dose
from metamed.runs.executors import (
    EXECUTORS,
    Executor,
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
)
from metamed.runs.run_folder import RunFolder
from metamed.runs.suite import SUITES, Suite, SuiteDataset, SuiteOutputs, read_suite, run_suite

__all__ = [
    "EXECUTORS",
    "BenchmarkOutputs",
    "DoseOutputs",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "RunFolder",
    "SUITES",
    "Suite",
    "SuiteDataset",
    "SuiteOutputs",
    "SerialExecutor",
    "execute",
    "load_cohort",
    "make_executor",
    "make_methods",
    "make_splits",
    "read_spec",
    "read_suite",
    "run_benchmark",
    "run_dose",
    "run_spec",
    "run_suite",
]
