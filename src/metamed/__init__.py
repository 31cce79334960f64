"""metamed: meta-learning for clinical models.

Meta-train on many related clinical tasks (hospitals, conditions, patients, assays)
and adapt to a new one from a handful of labelled examples.
"""

from metamed.errors import MetamedError

__version__ = "0.1.0"

__all__ = ["MetamedError", "__version__"]
