"""Meta-learners and baselines, all under one contract (see :mod:`metamed.learners.base`).

Importing this package registers every learner under its CLI name.
"""

import importlib

# TEMPORARY while learners land in parallel: import what exists.
for _module in ("baselines", "maml", "protonet", "reptile"):
    try:
        importlib.import_module(f"metamed.learners.{_module}")
    except ModuleNotFoundError as _error:
        if _error.name != f"metamed.learners.{_module}":
            raise
from metamed.learners.base import (
    LEARNERS,
    AdaptedModel,
    MetaLearner,
    learner_names,
    make_learner,
    register,
)

#: Methods that are reference points rather than meta-learners: each meta-learner is
#: compared with the best of these on the same episodes.
BASELINES: tuple[str, ...] = ("pooled", "pooled-finetune", "local-logreg", "local-gbm")

__all__ = [
    "AdaptedModel",
    "BASELINES",
    "LEARNERS",
    "MetaLearner",
    "learner_names",
    "make_learner",
    "register",
]
