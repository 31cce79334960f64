# The public names of metamed.learners and the module each comes from: read by type
# checkers, and by lazy_loader at run time to load each module on first use (__init__.py).
from .base import (
    ADAPTED_MODELS,
    LEARNERS,
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    Registry,
    learner_class,
    learner_names,
    learners_for,
    load_every_learner,
    make_learner,
    register,
)
from .baselines import (
    LocalGBM,
    LocalLogisticRegression,
    LocalRandomForest,
    PooledFineTune,
    PooledMLP,
)
from .catalogue import (
    BASELINES,
    DEFAULT_METHODS,
    GUARDS,
    NAMED_ONLY,
    PROBES,
    UPDATING,
    default_methods,
    make_method,
    method_names,
)
from .clinical import CLINICAL_SCORES, ScoreBaseline
from .conformal import (
    ConformalIntervalModel,
    ConformalModel,
    ConformalSetModel,
    conformal_adapt,
)
from .guard import Guard
from .maml import ANIL, FOMAML, MAML, AdaptedMLP, GradientMetaLearner, MetaSGD
from .metapred import MetaPred
from .mixed import RandomIntercept
from .multitask import MultitaskMLP
from .neighbours import TanimotoKNN
from .pipeline import Pipeline
from .probe import LinearProbe, SupportOnly
from .protonet import ProtoNet
from .reptile import Reptile
from .updating import (
    LogisticRecalibration,
    ModelRevision,
    PooledLogistic,
    RecalibrateIntercept,
)

__all__ = [
    "ADAPTED_MODELS",
    "ANIL",
    "BASELINES",
    "CLINICAL_SCORES",
    "DEFAULT_METHODS",
    "FOMAML",
    "GUARDS",
    "LEARNERS",
    "MAML",
    "NAMED_ONLY",
    "PROBES",
    "UPDATING",
    "AdaptedMLP",
    "AdaptedModel",
    "BinaryModel",
    "ConformalIntervalModel",
    "ConformalModel",
    "ConformalSetModel",
    "GradientMetaLearner",
    "Guard",
    "LinearProbe",
    "LocalGBM",
    "LocalLogisticRegression",
    "LocalRandomForest",
    "LogisticRecalibration",
    "MetaLearner",
    "MetaPred",
    "MetaSGD",
    "ModelRevision",
    "MultitaskMLP",
    "Pipeline",
    "PooledFineTune",
    "PooledLogistic",
    "PooledMLP",
    "ProtoNet",
    "Registry",
    "RandomIntercept",
    "RecalibrateIntercept",
    "Reptile",
    "ScoreBaseline",
    "SupportOnly",
    "TanimotoKNN",
    "conformal_adapt",
    "default_methods",
    "learner_class",
    "learner_names",
    "learners_for",
    "load_every_learner",
    "make_learner",
    "make_method",
    "method_names",
    "register",
]
