"""The new-site split: every site that can be scored is held out in turn; the others teach.

A model trained at some hospitals meets a new one.  The rule, stated once:

- a site is **evaluated** (held out, adapted to from K of its patients, scored on the
  rest) when it can be at every support size: at least ``max(shots) + min_query``
  patients and, for a binary outcome, at least ``min_per_class`` of each class;
- every other site is **skipped** from evaluation with its reason (too few patients,
  one outcome class, too few of one class), logged on the ``metamed`` logger and
  counted, and still meta-trains: the eICU demo's 175 hospitals with fewer than 20 stays
  are tiny training tasks (the learners skip the ones too small for their episodes);
- the evaluated sites are held out one at a time (``folds = 0``, leave-one-site-out), or
  in ``folds`` seeded groups to bound the number of fits (IWPC's 22 sites), each split
  meta-training on every site not held out, or with ``train_sites = N`` on N of them,
  drawn per split from a seeded order of its training sites, so that the N sites of a
  smaller N are among those of a larger one (how results change with the number of
  training sites: IWPC on 5, 10 and 21).

With ``part_col`` (a second group column, e.g. PhysioNet 2012's challenge ``set``) each
site is cut into its parts, and a held-out site is scored on its ``test_part`` rows
only while the other sites meta-train on their ``train_part`` rows: meta-train on set
A, evaluate on the held-out ICU type in set B, an independent cohort.

The rule reads only site sizes and class counts, never which patient holds which label.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metamed.data.cohort import Cohort
from metamed.errors import MetamedValueError
from metamed.tasks.rare import unusable_reason
from metamed.tasks.taskset import TaskSet, TaskSplit

__all__ = ["SiteRule", "SiteSplit", "site_split"]

logger = logging.getLogger("metamed")

#: Between a site and its part in the task names of a split by parts ("MICU / b").
PART_SEPARATOR = " / "


@dataclass(frozen=True)
class SiteRule:
    """Which sites are evaluated, and how they are held out (see the module docstring)."""

    #: fewest patients the largest support set must leave to score
    min_query: int = 10
    #: fewest patients of each outcome class (support group) an evaluated site must hold
    min_per_class: int = 2
    #: 0: each evaluated site held out alone; N: N seeded groups of evaluated sites
    folds: int = 0
    #: 0: every site not held out meta-trains; N: N of them per split (seeded, nested in N)
    train_sites: int = 0
    #: a group column cutting each site into parts (e.g. "set"); with the two below
    part_col: str | None = None
    train_part: str | None = None
    test_part: str | None = None

    def __post_init__(self) -> None:
        for name in ("min_query", "min_per_class"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise MetamedValueError(
                    f"sites split: {name} must be a positive whole number, got {value!r}."
                )
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 0:
            raise MetamedValueError(
                f"sites split: folds must be 0 (one site at a time) or a positive whole number, "
                f"got {self.folds!r}."
            )
        n = self.train_sites
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise MetamedValueError(
                f"sites split: train_sites must be 0 (every site not held out) or a positive "
                f"whole number, got {n!r}."
            )
        parts = (self.part_col, self.train_part, self.test_part)
        if any(p is not None for p in parts) and any(p is None for p in parts):
            raise MetamedValueError(
                "sites split: part_col, train_part and test_part go together (e.g. part_col = "
                '"set", train_part = "a", test_part = "b"); give all three or none.'
            )

    def to_dict(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {
            "min_query": int(self.min_query),
            "min_per_class": int(self.min_per_class),
            "folds": int(self.folds),
        }
        if self.train_sites:  # earlier runs' records stay as they were
            out["train_sites"] = int(self.train_sites)
        if self.part_col is not None:
            out.update(part_col=self.part_col, train_part=str(self.train_part),
                       test_part=str(self.test_part))  # fmt: skip
        return out


@dataclass(frozen=True)
class SiteSplit:
    """The splits, the task set they index (cut into parts where the rule says), and for
    every site not evaluated, why."""

    splits: tuple[TaskSplit, ...]
    taskset: TaskSet
    rule: SiteRule
    shots: tuple[int, ...]
    #: site name -> reason it is not evaluated
    skipped: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Sites evaluated, sites only training, and skipped sites per kind of reason."""
        kinds = Counter(reason.split(":")[0].replace(" ", "_") for reason in self.skipped.values())
        evaluated = {name for split in self.splits for name in split.test}
        return {
            "evaluated": len(evaluated),
            "splits": len(self.splits),
            "skipped": len(self.skipped),
            **{f"skipped_{kind}": n for kind, n in sorted(kinds.items())},
        }

    def to_dict(self) -> dict:
        """What a run's config records: the rule, the counts and every skipped site."""
        return {
            "kind": "sites",
            "rule": self.rule.to_dict(),
            "shots": list(self.shots),
            "counts": self.counts(),
            "skipped": dict(sorted(self.skipped.items())),
        }


def _by_parts(taskset: TaskSet, rule: SiteRule) -> TaskSet:
    """``taskset`` with each site cut into its parts, tasks named ``site / part``."""
    cohort, col = taskset.cohort, str(rule.part_col)
    if col not in cohort.schema.group:
        raise MetamedValueError(
            f"sites split: part_col '{col}' is not a group column of {cohort.name} (its group "
            f"columns: {', '.join(cohort.schema.group)})."
        )
    parts = set(cohort.frame[col].astype(str))
    for part in (rule.train_part, rule.test_part):
        if part not in parts:
            raise MetamedValueError(
                f"sites split: {col} has no value '{part}' in {cohort.name} (values: "
                f"{', '.join(sorted(parts))})."
            )
    crossed = f"{taskset.task_col}{PART_SEPARATOR.strip()}{col}"
    frame = cohort.frame.assign(
        **{crossed: cohort.frame[taskset.task_col].astype(str) + PART_SEPARATOR
           + cohort.frame[col].astype(str)}
    )  # fmt: skip
    schema = dataclasses.replace(cohort.schema, group=(*cohort.schema.group, crossed))
    return TaskSet(Cohort(cohort.name, frame, schema, cohort.provenance), crossed)


def site_split(taskset: TaskSet, rule: SiteRule, shots: Sequence[int], seed: int = 0) -> SiteSplit:
    """Split ``taskset``'s sites by :class:`SiteRule` (see the module docstring).

    Raises
    ------
    MetamedValueError
        When no site can be evaluated at every K (the message gives the site sizes) or
        none would be left to meta-train on.
    """
    if not shots:
        raise MetamedValueError("sites split: give at least one support size K.")
    k_max = max(int(k) for k in shots)
    if rule.part_col is not None:
        taskset = _by_parts(taskset, rule)
        tail = {"train": PART_SEPARATOR + str(rule.train_part),
                "test": PART_SEPARATOR + str(rule.test_part)}  # fmt: skip
        site_of = {n: n.rsplit(PART_SEPARATOR, 1)[0] for n in taskset.names}
        trainable = [n for n in taskset.names if n.endswith(tail["train"])]
        candidates = [n for n in taskset.names if n.endswith(tail["test"])]
    else:
        site_of = {n: n for n in taskset.names}
        trainable = candidates = list(taskset.names)
    outcome_type = taskset.cohort.schema.outcome_type
    y_all = taskset.cohort.frame[taskset.cohort.schema.outcome].to_numpy(dtype=np.float64)
    evaluated: list[str] = []
    skipped: dict[str, str] = {}
    for name in candidates:
        reason = unusable_reason(
            y_all[taskset.rows(name)], outcome_type, k_max, rule.min_query, rule.min_per_class
        )
        if reason is None:
            evaluated.append(name)
        else:
            skipped[name] = reason
    if not evaluated:
        sizes = sorted((len(taskset.rows(n)) for n in candidates), reverse=True)
        raise MetamedValueError(
            f"sites split: no site of {taskset.cohort.name} can be evaluated at K = {k_max} (a "
            f"site needs at least {k_max + rule.min_query} patients and {rule.min_per_class} of "
            f"each class; the largest have {', '.join(map(str, sizes[:5]))}); use smaller K."
        )
    if rule.folds == 0 or rule.folds >= len(evaluated):
        groups = [[name] for name in evaluated]
    else:
        order = np.random.default_rng([seed, 3]).permutation(len(evaluated))
        groups = [sorted(evaluated[i] for i in part) for part in np.array_split(order, rule.folds)]
    splits = []
    for index, group in enumerate(groups):
        held_out = {site_of[n] for n in group}
        train = [n for n in trainable if site_of[n] not in held_out]
        if not train:
            raise MetamedValueError(
                f"sites split: holding out {', '.join(group)} leaves no site to meta-train on."
            )
        if rule.train_sites:
            if rule.train_sites > len(train):
                raise MetamedValueError(
                    f"sites split: holding out {', '.join(group)} leaves {len(train)} sites to "
                    f"meta-train on, fewer than train_sites = {rule.train_sites}; lower it."
                )
            # one seeded order per split, cut at N: fewer sites are a subset of more
            order = np.random.default_rng([seed, 4, index]).permutation(len(train))
            train = [train[i] for i in sorted(order[: rule.train_sites])]
        splits.append(TaskSplit(tuple(train), (), tuple(group)))
    result = SiteSplit(tuple(splits), taskset, rule, tuple(int(k) for k in shots), skipped)
    for name, reason in sorted(skipped.items()):
        logger.info("sites split: site %r not evaluated (%s)", name, reason)
    logger.info("sites split: %s", result.counts())
    return result
