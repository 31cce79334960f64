"""`BenchmarkSpec`: everything that decides a benchmark's numbers, as one serialisable value.

A spec names the data (a registered dataset and its options, or a table and its column
roles), the methods with their hyperparameters, the support sizes, the draws, the seed
and the split rule.  The command-line flags and a TOML file (``metamed benchmark --config
spec.toml``) build the same spec; :meth:`BenchmarkSpec.to_dict` and
:meth:`BenchmarkSpec.from_dict` round-trip it, and a run folder records it so that
``--resume`` can refuse to continue a different benchmark.

Methods are keyed by a **method id**: the user's ``label`` if given, else the learner's
name followed by the hyperparameters that differ from its defaults (``maml(inner_lr=0.05)``),
so that two configurations of one learner sit side by side in one run.  Run-wide
``overrides`` (``--meta-iterations``) apply to every method that accepts them and are not
part of the id.  A hyperparameter that a learner does not accept is an error naming the
learners that do; nothing is dropped silently.

An example file::

    shots = [5, 10, 20, 40]
    draws = 20
    seed = 0
    split = "auto"              # auto | loso | random | rare | sites
    sampler = "conditioned"     # or "unconditioned": K random patients of the site

    [rare]                      # with split = "rare" only: the rare-conditions rule
    n_common = 200              # (metamed.tasks.RareRule: also min_query, min_per_class,
                                #  val_fraction)

    [sites]                     # with split = "sites" only: the new-site rule
    min_query = 10              # (metamed.tasks.SiteRule: also min_per_class, folds,
                                #  part_col, train_part, test_part)

    [data]
    dataset = "uci-heart"       # or: table = "patients.csv", task_col = ..., outcome_col = ...

    [overrides]                 # optional: applied to every method that accepts them
    meta_iterations = 200

    [[methods]]
    name = "maml"

    [[methods]]
    name = "maml"
    label = "maml-small-lr"     # optional; default id: maml(inner_lr=0.05)
    params = { inner_lr = 0.05 }
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.evaluation.protocol import ProtocolConfig
from metamed.learners import (
    BASELINES,
    CLINICAL_SCORES,
    UPDATING,
    ScoreBaseline,
    learner_class,
    learner_names,
    make_method,
)
from metamed.learners.base import MetaLearner
from metamed.learners.recalibration import RECALIBRATED
from metamed.tasks import RareRule, SiteRule

__all__ = [
    "BenchmarkSpec", "DataSpec", "MethodSpec", "SPLIT_RULES", "check_keys", "set_params",
]  # fmt: skip

SPLIT_RULES = ("auto", "loso", "random", "rare", "sites")

#: Hyperparameters that are run-time hooks or come from the spec's seed, never part of an id.
_NOT_IN_ID = ("random_state", "progress")

#: The column roles of a table (``--table`` and its flags).
_TABLE_FIELDS = (
    "task_col",
    "outcome_col",
    "feature_cols",
    "categorical_cols",
    "drop_cols",
    "positive_label",
    "outcome_type",
)


def check_keys(given: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Refuse a key of ``given`` not in ``allowed`` (a spec's or a suite's table), with a
    "did you mean"."""
    for key in given:
        if key not in allowed:
            raise MetamedValueError(
                f"{where}: unknown key '{key}'.{did_you_mean(key, allowed)} "
                f"Known keys: {', '.join(allowed)}."
            )


def _as_tuple(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise MetamedTypeError(f"{where} must be a list of column names, got {value!r}.")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class DataSpec:
    """The data of a benchmark: a registered ``dataset`` with ``options``, or a ``table``.

    ``task_col`` picks the task column of either; the other column roles apply to a table.
    """

    dataset: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    table: str | None = None
    task_col: str | None = None
    outcome_col: str | None = None
    feature_cols: Sequence[str] | None = None
    categorical_cols: Sequence[str] | None = None
    drop_cols: Sequence[str] | None = None
    positive_label: str | None = None
    outcome_type: str | None = None

    def __post_init__(self) -> None:
        if self.table is not None and self.dataset is not None:
            raise MetamedValueError("Give either a dataset or a table, not both.")
        if self.table is not None and not (self.task_col and self.outcome_col):
            raise MetamedValueError(
                "A table needs task_col (the site/condition column) and outcome_col "
                "(--task-col and --outcome-col)."
            )
        if self.table is None and any(getattr(self, f) is not None for f in _TABLE_FIELDS[1:]):
            raise MetamedValueError(
                "--outcome-col, --feature-cols, --categorical-cols, --drop-cols, --positive-label "
                "and --outcome-type apply to --table only (outcome_col, feature_cols, ... in [data])."
            )
        if self.table is not None and self.options:
            raise MetamedValueError("Dataset options apply to a registered dataset, not a table.")
        for name in ("feature_cols", "categorical_cols", "drop_cols"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), name))
        object.__setattr__(self, "options", dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "options" and not value):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSpec:
        if not isinstance(data, Mapping):
            raise MetamedTypeError(f"[data] must be a table of keys, got {data!r}.")
        check_keys(data, [f.name for f in fields(cls)], "[data]")
        return cls(**dict(data))


@dataclass(frozen=True)
class MethodSpec:
    """One method of a benchmark: a registered learner, its hyperparameters, an optional label."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.name not in learner_names():
            make_method(self.name)  # a clinical score, or the "did you mean" error
        if not isinstance(self.params, Mapping):
            raise MetamedTypeError(
                f"params of method '{self.name}' must be a table, got {self.params!r}."
            )
        object.__setattr__(self, "params", dict(self.params))
        accepted = _param_defaults(self.name)
        for key in self.params:
            if key not in accepted or key == "progress":
                raise _not_accepted(key, [self.name], f"method '{self.name}'")
        if self.label is not None and (not isinstance(self.label, str) or not self.label.strip()):
            raise MetamedValueError(f"label of method '{self.name}' must be a non-empty string.")

    @property
    def id(self) -> str:
        """The label, or the name plus the hyperparameters that differ from the defaults."""
        if self.label is not None:
            return self.label
        defaults = _param_defaults(self.name)
        changed = {
            k: v
            for k, v in sorted(self.params.items())
            if k not in _NOT_IN_ID and not _same(v, defaults[k])
        }
        if not changed:
            return self.name
        return f"{self.name}({','.join(f'{k}={_short(v)}' for k, v in changed.items())})"

    def learner(self, seed: int, overrides: Mapping[str, Any] | None = None) -> MetaLearner:
        """The unfitted learner: seeded from ``seed``, then the ``overrides`` it accepts,
        then this method's own params."""
        accepted = _param_defaults(self.name)
        params: dict[str, Any] = {"random_state": seed} if "random_state" in accepted else {}
        params.update({k: v for k, v in (overrides or {}).items() if k in accepted})
        params.update(self.params)
        return make_method(self.name, **params)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.params:
            out["params"] = dict(self.params)
        if self.label is not None:
            out["label"] = self.label
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> MethodSpec:
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, Mapping) or "name" not in data:
            raise MetamedValueError(
                f"A method is a name or a table with name (and optionally params, label); got {data!r}."
            )
        check_keys(data, ["name", "params", "label"], f"method '{data['name']}'")
        return cls(**dict(data))


@dataclass(frozen=True)
class BenchmarkSpec:
    """A whole benchmark as one value (see the module docstring for the file format)."""

    data: DataSpec
    methods: tuple[MethodSpec, ...]
    shots: tuple[int, ...] = (5, 10, 20, 40)
    draws: int = 20
    seed: int = 0
    split: str = "auto"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Share of training rows held out for early stopping when no task can be spared
    #: (see :class:`~metamed.evaluation.protocol.ProtocolConfig`).
    val_rows_fraction: float = ProtocolConfig.val_rows_fraction
    #: How support sets are drawn (``conditioned`` or ``unconditioned``; see
    #: :class:`~metamed.evaluation.protocol.ProtocolConfig`).
    sampler: str = ProtocolConfig.sampler
    #: The rare-conditions rule of ``split = "rare"`` (:class:`~metamed.tasks.RareRule`).
    rare: RareRule | None = None
    #: The new-site rule of ``split = "sites"`` (:class:`~metamed.tasks.SiteRule`).
    sites: SiteRule | None = None
    #: Also score each binary method recalibrated on its support set (``<id>+recal``).
    recalibrate: bool = ProtocolConfig.recalibrate

    def __post_init__(self) -> None:
        if isinstance(self.rare, Mapping):
            check_keys(self.rare, [f.name for f in fields(RareRule)], "[rare]")
            object.__setattr__(self, "rare", RareRule(**self.rare))
        if self.split == "rare" and self.rare is None:
            raise MetamedValueError(
                'split = "rare" needs the rare-conditions rule: add a [rare] table with n_common '
                "(the fewest patients of a common cohort)."
            )
        if self.rare is not None and self.split != "rare":
            raise MetamedValueError(
                f'A [rare] rule applies to split = "rare" only, but split is "{self.split}".'
            )
        if isinstance(self.sites, Mapping):
            check_keys(self.sites, [f.name for f in fields(SiteRule)], "[sites]")
            object.__setattr__(self, "sites", SiteRule(**self.sites))
        if self.split == "sites" and self.sites is None:
            object.__setattr__(self, "sites", SiteRule())  # the rule's defaults
        if self.sites is not None and self.split != "sites":
            raise MetamedValueError(
                f'A [sites] rule applies to split = "sites" only, but split is "{self.split}".'
            )
        methods = tuple(
            m if isinstance(m, MethodSpec) else MethodSpec.from_dict(m) for m in self.methods
        )
        if not methods:
            raise MetamedValueError("No methods to evaluate; give at least one method name.")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "shots", tuple(sorted({int(k) for k in self.shots})))
        object.__setattr__(self, "overrides", dict(self.overrides))
        if self.split not in SPLIT_RULES:
            raise MetamedValueError(
                f"Unknown split '{self.split}'.{did_you_mean(self.split, SPLIT_RULES)} "
                f"Use one of {', '.join(SPLIT_RULES)}."
            )
        self.protocol()  # shots, draws, seed and val_rows_fraction checked once, there
        ids = [m.id for m in methods]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise MetamedValueError(
                f"Two methods have the id '{repeated[0]}'; give them different hyperparameters "
                "or a label each."
            )
        names = [m.name for m in methods]
        for key in self.overrides:
            if key in _NOT_IN_ID or not any(key in _param_defaults(n) for n in names):
                raise _not_accepted(key, names, "override")

    def protocol(self) -> ProtocolConfig:
        return ProtocolConfig(
            shots=self.shots,
            draws=self.draws,
            seed=self.seed,
            val_rows_fraction=self.val_rows_fraction,
            sampler=self.sampler,
            recalibrate=self.recalibrate,
        )

    @property
    def method_ids(self) -> list[str]:
        return [m.id for m in self.methods]

    def with_params(
        self, params: Mapping[str, Mapping[str, Any]], source: str = "--param"
    ) -> BenchmarkSpec:
        """This spec with more hyperparameters for some of its methods (``--param``, or a
        suite dataset's ``params``; see :func:`set_params`)."""
        return replace(self, methods=set_params(self.methods, params, source))

    @property
    def baselines(self) -> list[str]:
        """Ids of the methods that are reference points: the baselines, the updating
        hierarchy and the mixed model, and the clinical scores (and, with
        ``recalibrate``, each of them recalibrated: ``<id>+recal``)."""
        ids = [
            m.id
            for m in self.methods
            if m.name in BASELINES + UPDATING or m.name in CLINICAL_SCORES
        ]
        return [*ids, *(i + RECALIBRATED for i in ids if self.recalibrate)]

    def learners(self) -> dict[str, MetaLearner]:
        """Unfitted learners by method id: defaults, then overrides, then the method's params."""
        return {m.id: m.learner(self.seed, self.overrides) for m in self.methods}

    def overridden(self) -> dict[str, list[str]]:
        """For each override, the method ids it applies to (said aloud by the CLI)."""
        return {
            key: [m.id for m in self.methods if key in _param_defaults(m.name)]
            for key in self.overrides
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data": self.data.to_dict(),
            "methods": [m.to_dict() for m in self.methods],
            "shots": list(self.shots),
            "draws": self.draws,
            "seed": self.seed,
            "split": self.split,
            "val_rows_fraction": self.val_rows_fraction,
        }
        if self.overrides:
            out["overrides"] = dict(self.overrides)
        if self.sampler != ProtocolConfig.sampler:  # earlier run folders' specs stay equal
            out["sampler"] = self.sampler
        if self.rare is not None:
            out["rare"] = self.rare.to_dict()
        if self.sites is not None:
            out["sites"] = self.sites.to_dict()
        if self.recalibrate:
            out["recalibrate"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchmarkSpec:
        check_keys(data, [f.name for f in fields(cls)], "benchmark spec")
        for required in ("data", "methods"):
            if required not in data:
                raise MetamedValueError(f"The benchmark spec has no '{required}'; add it.")
        methods = data["methods"]
        if isinstance(methods, str) or not isinstance(methods, Sequence):
            raise MetamedTypeError(f"methods must be a list of methods, got {methods!r}.")
        given = {k: v for k, v in data.items() if k not in ("data", "methods")}
        if "shots" in given and (
            isinstance(given["shots"], (str, int)) or not isinstance(given["shots"], Sequence)
        ):
            raise MetamedTypeError(
                f"shots must be a list of support sizes, got {given['shots']!r}."
            )
        for key in ("draws", "seed"):
            if key in given and (isinstance(given[key], bool) or not isinstance(given[key], int)):
                raise MetamedTypeError(f"{key} must be a whole number, got {given[key]!r}.")
        return cls(
            data=DataSpec.from_dict(data["data"]),
            methods=tuple(MethodSpec.from_dict(m) for m in methods),
            **given,
        )


def _param_defaults(name: str) -> dict[str, Any]:
    """A learner's hyperparameters and their defaults, from its signature."""
    if name in CLINICAL_SCORES:  # ScoreBaseline's, but the score is the method's name
        signature = inspect.signature(ScoreBaseline.__init__)
        return {p: v.default for p, v in signature.parameters.items() if p not in ("self", "score")}
    signature = inspect.signature(learner_class(name).__init__)
    return {p: v.default for p, v in signature.parameters.items() if p != "self"}


def set_params(
    methods: Sequence[MethodSpec],
    params: Mapping[str, Mapping[str, Any]],
    source: str = "--param",
) -> tuple[MethodSpec, ...]:
    """``methods`` with more hyperparameters set on top of their own (``--param``).

    ``params`` maps a method's label, or its learner name where one method uses that
    learner, to hyperparameters.  A method that is not run here, a name several methods
    share, or a hyperparameter the learner does not take is an error that says what
    would be accepted; ``source`` names where the params came from in that error.
    """
    methods = list(methods)
    for key, values in params.items():
        by_label = [i for i, m in enumerate(methods) if m.label == key]
        by_name = [i for i, m in enumerate(methods) if m.name == key]
        chosen = by_label or by_name
        if not chosen:
            names = sorted({m.label or m.name for m in methods})
            raise MetamedValueError(
                f"{source} names method '{key}', which is not run here."
                f"{did_you_mean(key, names)} Methods: {', '.join(names)}."
            )
        if len(chosen) > 1:
            raise MetamedValueError(
                f"{source} {key}.NAME: {len(chosen)} methods use {key} "
                f"({', '.join(methods[i].id for i in chosen)}); give each a label in the "
                "spec file and name the label."
            )
        (i,) = chosen
        methods[i] = replace(methods[i], params={**methods[i].params, **values})
    return tuple(methods)


def _not_accepted(key: str, names: Sequence[str], where: str) -> MetamedValueError:
    """``key`` is not a hyperparameter of ``names``: say which learners do take it."""
    takers = [n for n in learner_names() if key in _param_defaults(n) and key not in _NOT_IN_ID]
    known = sorted({p for n in names for p in _param_defaults(n) if p not in _NOT_IN_ID})
    who = f"learners that accept it: {', '.join(takers)}" if takers else "no learner accepts it"
    return MetamedValueError(
        f"{where}: {', '.join(sorted(set(names)))} do(es) not accept '{key}' ({who}).{did_you_mean(key, known)}"
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
