"""The application layer: what orchestrates a whole run and writes its files.

``metamed.evaluation`` computes (splits, jobs, scores, statistics) and writes nothing;
this package loads the data, runs the jobs, and puts tables, config and report on disk.
The command line (:mod:`metamed.cli`) is a thin shell over it.
"""

from metamed.runs.benchmark import BenchmarkOutputs, make_methods, make_splits, run_benchmark
from metamed.runs.dose import run_dose

__all__ = ["BenchmarkOutputs", "make_methods", "make_splits", "run_benchmark", "run_dose"]
