"""Which methods exist and which run by default: the method names the CLI and the suites use.

A method is a registered learner (:func:`metamed.learners.base.register`) or a clinical
score (:data:`metamed.learners.clinical.CLINICAL_SCORES`), which needs no training.
"""

from __future__ import annotations

from typing import Any

from metamed.errors import unknown_name
from metamed.learners.base import MetaLearner, learner_names, learners_for, make_learner
from metamed.learners.clinical import CLINICAL_SCORES, ScoreBaseline
from metamed.outcomes import Outcome

__all__ = [
    "BASELINES",
    "DEFAULT_METHODS",
    "GUARDS",
    "NAMED_ONLY",
    "PROBES",
    "UPDATING",
    "default_methods",
    "make_method",
    "method_names",
]

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

#: The baselines of the imaging tasks on the same network as the meta-learners: a linear
#: probe of the pooled network and the network trained on the support set alone (FHIST's
#: bar, Shakeri et al. 2022); named only, so the stored tabular results keep their numbers.
PROBES: tuple[str, ...] = ("linear-probe", "support-only")

#: Registered methods that run only when named: they came after the stored results, which
#: keep their numbers (the updating hierarchy, above, is the other such group).
NAMED_ONLY: tuple[str, ...] = ("multitask", *GUARDS, *PROBES)


def method_names() -> list[str]:
    """Every method name: the registered learners, then the clinical scores."""
    return [*learner_names(), *CLINICAL_SCORES]


def make_method(name: str, **params: Any) -> MetaLearner:
    """The learner of a method name: a registered learner, or a clinical score's
    :class:`ScoreBaseline` (``make_method("apache-iva")``)."""
    if name in CLINICAL_SCORES:
        return ScoreBaseline(score=name, **params)
    if name not in learner_names():
        raise unknown_name("method", name, method_names())
    return make_learner(name, **params)


def default_methods(outcome: Outcome) -> list[str]:
    """:data:`DEFAULT_METHODS` that model ``outcome`` (ProtoNet, for one, is binary only)."""
    able = set(learners_for(outcome))
    return [name for name in DEFAULT_METHODS if name in able]
