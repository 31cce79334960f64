"""Hyperparameters: declared once per learner family, checked by one validator (private).

A learner declares each hyperparameter once, as a field with its default and the values
it accepts::

    @hyperparameters
    class PooledMLP(MetaLearner):
        lr: float = hyperparameter(default=1e-3, allowed=Interval(Real, 0, None, "neither"))

:func:`hyperparameters` turns the fields into a keyword-only ``__init__`` that only
stores them (scikit-learn's estimator contract), so ``get_params``, ``set_params`` and
``clone`` read the signature.  A subclass inherits its parents' hyperparameters and
declares only what it adds or changes (Reptile redeclares ``outer_lr`` with its own
default and range).  :func:`check_hyperparameters` validates them all when ``meta_fit``
starts, with one message format, ``"<Learner>: <name> must be <accepted>, got <value>."``:
a value of the wrong type raises :class:`~metamed.errors.MetamedTypeError`, one out of
range :class:`~metamed.errors.MetamedValueError`, an unknown option
:class:`~metamed.errors.UnknownNameError` with "did you mean".

The constraints follow scikit-learn's ``utils/_param_validation.py`` (``Interval`` over
``numbers.Integral`` / ``numbers.Real``, options, ``None`` in the list of what is
allowed); that module is private to scikit-learn, so it is not imported.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Literal, TypeVar

import numpy as np

from metamed.errors import MetamedTypeError, MetamedValueError, UnknownNameError, did_you_mean

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10
    from typing_extensions import dataclass_transform

__all__ = [
    "NON_NEGATIVE",
    "NON_NEGATIVE_INT",
    "POSITIVE",
    "POSITIVE_INT",
    "SEED",
    "Boolean",
    "Callback",
    "Constraint",
    "Interval",
    "LayerWidths",
    "Options",
    "check_hyperparameters",
    "hyperparameter",
    "hyperparameters",
]

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Constraint(ABC):
    """A set of accepted values, described in words for the error message."""

    @abstractmethod
    def accepts_type(self, value: Any) -> bool:
        """Whether ``value`` has a type this constraint is about (wrong type: TypeError)."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is accepted (right type and in range)."""

    @abstractmethod
    def __str__(self) -> str: ...


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class Interval(Constraint):
    """Integers (``Integral``) or finite numbers (``Real``) between ``low`` and ``high``.

    ``None`` leaves a side open; ``closed`` says which ends belong to the interval.
    Booleans are never numbers here (``True`` as an iteration count is a mistake).
    """

    kind: type[Integral] | type[Real]
    low: float | None
    high: float | None
    closed: Literal["left", "right", "both", "neither"] = "left"

    def accepts_type(self, value: Any) -> bool:
        if self.kind is Integral:
            return _is_integer(value)
        return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))

    def accepts(self, value: Any) -> bool:
        if not self.accepts_type(value) or not math.isfinite(value):
            return False
        low_in = self.closed in ("left", "both")
        high_in = self.closed in ("right", "both")
        if self.low is not None and (value < self.low or (value == self.low and not low_in)):
            return False
        return self.high is None or value < self.high or (value == self.high and high_in)

    def __str__(self) -> str:
        noun = "an integer" if self.kind is Integral else "a finite number"
        low_in = self.closed in ("left", "both")
        high_in = self.closed in ("right", "both")
        if self.low is not None and self.high is not None:
            left, right = "[" if low_in else "(", "]" if high_in else ")"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>=' if low_in else '>'} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<=' if high_in else '<'} {self.high:g}"
        return noun


@dataclasses.dataclass(frozen=True)
class Options(Constraint):
    """One of a few names (``values`` may be a registry that grows at run time, such as
    :data:`metamed.learners.networks.NETWORKS`: it is read at each check)."""

    values: Collection[str]

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def accepts(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in sorted(self.values))


class Boolean(Constraint):
    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def accepts(self, value: Any) -> bool:
        return self.accepts_type(value)

    def __str__(self) -> str:
        return "True or False"


class Callback(Constraint):
    """A function the learner calls, e.g. ``progress(iteration, total, loss)``."""

    def accepts_type(self, value: Any) -> bool:
        return callable(value)

    def accepts(self, value: Any) -> bool:
        return callable(value)

    def __str__(self) -> str:
        return "a callable(iteration, total, loss)"


class _NoneValue(Constraint):
    def accepts_type(self, value: Any) -> bool:
        return value is None

    def accepts(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


@dataclasses.dataclass(frozen=True)
class LayerWidths(Constraint):
    """Hidden layer widths: a sequence of positive integers, at least ``min_layers`` long."""

    min_layers: int = 0

    def accepts_type(self, value: Any) -> bool:
        sequence = isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))
        return sequence and all(_is_integer(w) for w in value)

    def accepts(self, value: Any) -> bool:
        return (
            self.accepts_type(value)
            and all(w >= 1 for w in value)
            and len(value) >= self.min_layers
        )

    def __str__(self) -> str:
        text = "a sequence of positive layer widths such as (64, 64)"
        if self.min_layers:
            text += f" with at least {self.min_layers} hidden layer(s)"
        return text


#: The ranges most hyperparameters use.
POSITIVE_INT = Interval(Integral, 1, None)
NON_NEGATIVE_INT = Interval(Integral, 0, None)
POSITIVE = Interval(Real, 0, None, "neither")
NON_NEGATIVE = Interval(Real, 0, None)
#: A seed: an explicit integer, so that a run can be repeated.
SEED = Interval(Integral, 0, None)


def hyperparameter(
    *,
    default: T,
    allowed: Constraint | None | Sequence[Constraint | None],
    hint: str = "",
) -> T:
    """Declare one hyperparameter: its default and what it accepts (``None`` for None).

    ``hint`` is appended to the error message (why the rule exists, how to fix it).
    """
    listed = list(allowed) if isinstance(allowed, Sequence) else [allowed]
    constraints = tuple(_NoneValue() if c is None else c for c in listed)
    metadata = {"allowed": constraints, "hint": hint}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass_transform(kw_only_default=True, eq_default=False, field_specifiers=(hyperparameter,))
def hyperparameters(cls: C) -> C:
    """Class decorator: the class's fields are its hyperparameters (see the module docs).

    The ``__init__`` is keyword-only and only stores; the class keeps its own ``repr`` and
    identity equality (two learners with equal settings are still two learners).
    """
    dataclasses.dataclass(kw_only=True, repr=False, eq=False)(cls)  # changes cls in place
    undeclared = [f.name for f in dataclasses.fields(cls) if "allowed" not in f.metadata]
    if undeclared:
        raise TypeError(
            f"{cls.__name__}: declare {undeclared} with hyperparameter(default=..., "
            "allowed=...), so that meta_fit can check them."
        )
    return cls


def allowed_values(cls: type) -> Mapping[str, dataclasses.Field[Any]]:
    """The hyperparameter fields of a class decorated with :func:`hyperparameters`.

    Empty for a class that declares its ``__init__`` by hand (nothing to check).
    """
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f for f in dataclasses.fields(cls)}


def check_hyperparameters(learner: Any) -> None:
    """Raise the first hyperparameter of ``learner`` that its declaration does not allow."""
    owner = type(learner).__name__
    for name, spec in allowed_values(type(learner)).items():
        value = getattr(learner, name)
        constraints: tuple[Constraint, ...] = spec.metadata["allowed"]
        if any(c.accepts(value) for c in constraints):
            continue
        expected = " or ".join(str(c) for c in constraints)
        message = f"{owner}: {name} must be {expected}, got {value!r}."
        options = [c for c in constraints if isinstance(c, Options)]
        if options and isinstance(value, str):
            choices = [v for c in options for v in c.values]
            raise UnknownNameError(message + did_you_mean(value, choices))
        hint = f" {spec.metadata['hint']}" if spec.metadata["hint"] else ""
        typed = any(c.accepts_type(value) for c in constraints)
        raise (MetamedValueError if typed else MetamedTypeError)(message + hint)
