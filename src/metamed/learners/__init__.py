"""Meta-learners and baselines, all under one contract (see :mod:`metamed.learners.base`).

Importing this package registers every learner under its CLI name (and every adapted
model class under its class name, for loading saved models).
"""

from typing import Any as _Any

from metamed.errors import unknown_name as _unknown_name
from metamed.learners.base import (
    ADAPTED_MODELS,
    LEARNERS,
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    learner_names,
    learners_for,
    make_learner,
    register,
)
from metamed.learners.baselines import (
    LocalGBM,
    LocalLogisticRegression,
    LocalRandomForest,
    PooledFineTune,
    PooledMLP,
)
from metamed.learners.clinical import CLINICAL_SCORES, ScoreBaseline
from metamed.learners.conformal import (
    ConformalIntervalModel,
    ConformalModel,
    ConformalSetModel,
    conformal_adapt,
)
from metamed.learners.guard import Guard
from metamed.learners.maml import ANIL, FOMAML, MAML, AdaptedMLP, GradientMetaLearner, MetaSGD
from metamed.learners.metapred import MetaPred
from metamed.learners.mixed import RandomIntercept
from metamed.learners.multitask import MultitaskMLP
from metamed.learners.neighbours import TanimotoKNN
from metamed.learners.pipeline import Pipeline
from metamed.learners.protonet import ProtoNet
from metamed.learners.reptile import Reptile
from metamed.learners.updating import (
    LogisticRecalibration,
    ModelRevision,
    PooledLogistic,
    RecalibrateIntercept,
)
from metamed.outcomes import Outcome as _Outcome

#: Methods that are reference points rather than meta-learners: each meta-learner is
#: compared with the best of these on the same episodes.
BASELINES: tuple[str, ...] = (
    "pooled", "pooled-finetune", "multitask", "local-logreg", "local-gbm", "local-rf",
    "local-knn",
)  # fmt: skip

#: The clinical statistician's updating hierarchy and the mixed model (not in the default
#: methods, so existing benchmarks keep their numbers; the sites suite runs them).
UPDATING: tuple[str, ...] = (
    "pooled-logreg", "recal-intercept", "recal-logistic", "model-revision", "mixed-intercept",
)  # fmt: skip

#: The adapt-or-not guard (:mod:`metamed.learners.guard`): not a default method, since it
#: meta-trains two learners; the sites suite runs it.
GUARDS: tuple[str, ...] = ("guard",)

#: What ``metamed benchmark`` runs when no methods are named, in this order (meta-learners
#: first, then the baselines), kept to those that model the cohort's outcome.
DEFAULT_METHODS: tuple[str, ...] = (
    "maml", "fomaml", "anil", "metasgd", "reptile", "protonet", "metapred",
    *(name for name in BASELINES if name != "multitask"),
)  # fmt: skip

#: Registered methods that run only when named: they came after the stored results, which
#: keep their numbers (the updating hierarchy, above, is the other such group).
NAMED_ONLY: tuple[str, ...] = ("multitask", *GUARDS)


def method_names() -> list[str]:
    """Every method name: the registered learners, then the clinical scores."""
    return [*learner_names(), *CLINICAL_SCORES]


def make_method(name: str, **params: _Any) -> MetaLearner:
    """The learner of a method name: a registered learner, or a clinical score's
    :class:`ScoreBaseline` (``make_method("apache-iva")``)."""
    if name in CLINICAL_SCORES:
        return ScoreBaseline(score=name, **params)
    if name not in LEARNERS:
        raise _unknown_name("method", name, method_names())
    return make_learner(name, **params)


def default_methods(outcome: _Outcome) -> list[str]:
    """:data:`DEFAULT_METHODS` that model ``outcome`` (ProtoNet, for one, is binary only)."""
    able = set(learners_for(outcome))
    return [name for name in DEFAULT_METHODS if name in able]


__all__ = [
    "ADAPTED_MODELS",
    "CLINICAL_SCORES",
    "ANIL",
    "BASELINES",
    "DEFAULT_METHODS",
    "FOMAML",
    "GUARDS",
    "LEARNERS",
    "MAML",
    "NAMED_ONLY",
    "AdaptedMLP",
    "AdaptedModel",
    "BinaryModel",
    "ConformalIntervalModel",
    "ConformalModel",
    "ConformalSetModel",
    "GradientMetaLearner",
    "Guard",
    "LocalGBM",
    "LogisticRecalibration",
    "ModelRevision",
    "PooledLogistic",
    "RandomIntercept",
    "RecalibrateIntercept",
    "ScoreBaseline",
    "UPDATING",
    "LocalLogisticRegression",
    "LocalRandomForest",
    "MetaLearner",
    "MetaPred",
    "MetaSGD",
    "MultitaskMLP",
    "Pipeline",
    "PooledFineTune",
    "PooledMLP",
    "ProtoNet",
    "Reptile",
    "TanimotoKNN",
    "conformal_adapt",
    "default_methods",
    "learner_names",
    "learners_for",
    "make_learner",
    "make_method",
    "method_names",
    "register",
]
