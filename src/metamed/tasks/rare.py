"""The rare-conditions split (the MetaPred setting): common cohorts teach, rare ones test.

Condition cohorts (a diagnosis category, a disease group) differ wildly in size: in
Diabetes-130, 14 of 661 primary-diagnosis categories hold half the patients and hundreds
hold a handful.  Meta-learning for rare conditions trains on the common cohorts and is
judged on the rare ones, each adapted from K labelled patients.  The rule, stated once:

- **common** (meta-train, a seeded share ``val_fraction`` of them meta-val): a cohort
  with at least ``n_common`` patients;
- **rare** (meta-test): a cohort with fewer than ``n_common`` patients that can be
  evaluated at every support size: at least ``max(shots) + min_query`` patients (a
  query set of at least ``min_query`` patients left by the largest support set) and at
  least ``min_per_class`` patients in each support group of the outcome (both classes
  of a binary one), so that a support set can hold both classes and the query set is
  likely to as well;
- **skipped**: every other cohort (too few patients, or too few of one class, one class
  only included), each with its reason, logged on the ``metamed`` logger and counted.

Every rare cohort is evaluated at every K, so a K-shot curve compares the same cohorts
at each point.  The rule reads only cohort sizes and class counts, never which patient
holds which label, and a patient sits in one cohort only (the condition loaders keep one
row per patient), so a split by cohort is a split by patient.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metamed.errors import MetamedValueError
from metamed.outcomes import Outcome
from metamed.tasks.taskset import TaskSet, TaskSplit

__all__ = ["RareRule", "RareSplit", "rare_split", "unusable_reason"]

logger = logging.getLogger("metamed")


@dataclass(frozen=True)
class RareRule:
    """Which cohorts are common (meta-train / meta-val), rare (meta-test) or skipped."""

    #: a cohort with at least this many patients is common
    n_common: int
    #: fewest patients the largest support set must leave to score
    min_query: int = 20
    #: fewest patients of each outcome class (support group) a rare cohort must hold
    min_per_class: int = 3
    #: share of the common cohorts held out (seeded) for early stopping
    val_fraction: float = 0.15

    def __post_init__(self) -> None:
        for name in ("n_common", "min_query", "min_per_class"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise MetamedValueError(
                    f"rare split: {name} must be a positive whole number, got {value!r}."
                )
        if not 0.0 <= self.val_fraction < 1.0:
            raise MetamedValueError(
                f"rare split: val_fraction must be in [0, 1), got {self.val_fraction!r}."
            )

    def to_dict(self) -> dict[str, int | float]:
        return {
            "n_common": int(self.n_common),
            "min_query": int(self.min_query),
            "min_per_class": int(self.min_per_class),
            "val_fraction": float(self.val_fraction),
        }


@dataclass(frozen=True)
class RareSplit:
    """The split and, for every cohort left out, why."""

    split: TaskSplit
    rule: RareRule
    shots: tuple[int, ...]
    #: cohort name -> reason it is in no split
    skipped: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Cohorts per role, and skipped cohorts per kind of reason."""
        kinds = Counter(reason.split(":")[0].replace(" ", "_") for reason in self.skipped.values())
        return {
            "common_train": len(self.split.train),
            "common_val": len(self.split.val),
            "rare_test": len(self.split.test),
            "skipped": len(self.skipped),
            **{f"skipped_{kind}": n for kind, n in sorted(kinds.items())},
        }

    def to_dict(self) -> dict:
        """What a run's config records: the rule, the counts and every skipped cohort."""
        return {
            "rule": self.rule.to_dict(),
            "shots": list(self.shots),
            "counts": self.counts(),
            "skipped": dict(sorted(self.skipped.items())),
        }


def unusable_reason(
    y: np.ndarray, outcome_type: Outcome, k_max: int, min_query: int, min_per_class: int
) -> str | None:
    """Why a task with labels ``y`` cannot be scored at every K up to ``k_max``, or None.

    The kind of reason comes before the colon (``too few patients``, ``one class``, ``too
    few of one class``): it is what run configurations and results pages count.
    """
    n, need = len(y), k_max + min_query
    smallest = min(len(group) for group in outcome_type.support_groups(y))
    if n < need:
        return f"too few patients: {n} < {need} (K = {k_max} plus {min_query} to score)"
    if smallest == 0:
        return f"one class: all {n} patients have the same outcome"
    if smallest < min_per_class:
        return f"too few of one class: {smallest} < {min_per_class} patients"
    return None


def rare_split(taskset: TaskSet, rule: RareRule, shots: Sequence[int], seed: int = 0) -> RareSplit:
    """Split ``taskset``'s cohorts by :class:`RareRule` (see the module docstring).

    Raises
    ------
    MetamedValueError
        When no cohort is common or none is rare: the message gives the cohort sizes, so
        that ``n_common`` can be chosen.
    """
    if not shots:
        raise MetamedValueError("rare split: give at least one support size K.")
    k_max = max(int(k) for k in shots)
    need = k_max + rule.min_query
    outcome_type = taskset.cohort.schema.outcome_type
    y_all = taskset.cohort.frame[taskset.cohort.schema.outcome].to_numpy(dtype=np.float64)
    common: list[str] = []
    rare: list[str] = []
    skipped: dict[str, str] = {}
    for name in taskset.names:
        y = y_all[taskset.rows(name)]
        n = len(y)
        if n >= rule.n_common:
            common.append(name)
            continue
        reason = unusable_reason(y, outcome_type, k_max, rule.min_query, rule.min_per_class)
        if reason is None:
            rare.append(name)
        else:
            skipped[name] = reason
    sizes = sorted((len(taskset.rows(n)) for n in taskset.names), reverse=True)
    if not common:
        raise MetamedValueError(
            f"rare split: no cohort has n_common = {rule.n_common} patients or more (the "
            f"largest have {', '.join(map(str, sizes[:5]))}); lower n_common."
        )
    if not rare:
        raise MetamedValueError(
            f"rare split: no cohort below n_common = {rule.n_common} patients can be evaluated "
            f"at K = {k_max} (a rare cohort needs at least {need} patients and "
            f"{rule.min_per_class} of each class); raise n_common or use smaller K."
        )
    n_val = int(round(rule.val_fraction * len(common)))
    n_val = min(n_val, len(common) - 1)
    rng = np.random.default_rng([seed, 2])
    val = sorted(rng.choice(common, n_val, replace=False).tolist()) if n_val > 0 else []
    train = [n for n in common if n not in val]
    split = TaskSplit(tuple(train), tuple(val), tuple(rare))
    result = RareSplit(split, rule, tuple(int(k) for k in shots), skipped)
    for name, reason in sorted(skipped.items()):
        logger.info("rare split: cohort %r skipped (%s)", name, reason)
    logger.info("rare split: %s", result.counts())
    return result
