"""Meta-learners and baselines, all under one contract (see :mod:`metamed.learners.base`).

Importing this package registers every learner under its CLI name (and every adapted
model class under its class name, for loading saved models).
"""

from metamed.learners.base import (
    ADAPTED_MODELS,
    LEARNERS,
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    learner_names,
    make_learner,
    register,
)
from metamed.learners.baselines import (
    LocalGBM,
    LocalLogisticRegression,
    PooledFineTune,
    PooledMLP,
)
from metamed.learners.maml import ANIL, FOMAML, MAML, AdaptedMLP, GradientMetaLearner, MetaSGD
from metamed.learners.pipeline import Pipeline
from metamed.learners.protonet import ProtoNet
from metamed.learners.reptile import Reptile

#: Methods that are reference points rather than meta-learners: each meta-learner is
#: compared with the best of these on the same episodes.
BASELINES: tuple[str, ...] = ("pooled", "pooled-finetune", "local-logreg", "local-gbm")

__all__ = [
    "ADAPTED_MODELS",
    "ANIL",
    "BASELINES",
    "FOMAML",
    "LEARNERS",
    "MAML",
    "AdaptedMLP",
    "AdaptedModel",
    "BinaryModel",
    "GradientMetaLearner",
    "LocalGBM",
    "LocalLogisticRegression",
    "MetaLearner",
    "MetaSGD",
    "Pipeline",
    "PooledFineTune",
    "PooledMLP",
    "ProtoNet",
    "Reptile",
    "learner_names",
    "make_learner",
    "register",
]
