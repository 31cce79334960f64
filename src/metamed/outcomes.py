"""What a task predicts: the outcome type, and everything that depends on it.

An :class:`Outcome` is a small value (``BINARY``, ``NUMERIC``) that a schema, every task
and every fitted learner carry.  Code that behaves differently per outcome asks the
outcome instead of comparing its name, so a new kind is one new class here, not a hunt
through the code base (scikit-survival's ``Surv`` / ``check_y_survival`` is the model:
the clinical target is a small type with one validator).  An outcome owns:

* **label validation** (:meth:`Outcome.check_labels`): the one check that a cohort, a
  preprocessed outcome column and a :class:`~metamed.tasks.Task` all run; binary labels
  are 0/1, numeric ones finite within float32, neither may be missing;
* **support sets** (:attr:`Outcome.classes`, :meth:`Outcome.support_groups`,
  :attr:`Outcome.min_support`): which rows a support set must draw from (both classes
  of a binary outcome) and the smallest K that can hold them;
* **the training loss** (:meth:`Outcome.loss`, :meth:`Outcome.row_losses`,
  :meth:`Outcome.loss_gradient`): BCE with logits or squared error, and the derivative
  the engine's manual backend needs;
* **target scaling** (:meth:`Outcome.fit_scaling`): numeric targets are modelled
  standardised, so one learning rate means the same on every dataset;
* **the prediction that is scored** (:meth:`Outcome.predict`): P(y = 1) from a binary
  model's ``predict_proba``, values from a numeric model's ``predict``;
* **the default metrics**, as names from the metric registry in
  :mod:`metamed.evaluation.metrics` (names, so this module imports nothing above it).

The shape leaves room for multi-label assays (several binary labels per row, missing
meaning untested: :meth:`~Outcome.check_labels` decides what missing means, ``y`` may
have a label axis) and survival (``y`` holding time and event, a partial-likelihood
loss, a risk score as prediction): callers ask the outcome and do not change.

An outcome serialises to its name (``str(BINARY) == "binary"``; schema and run
configuration JSON stay readable) and :func:`as_outcome` turns a name back into one.  An
outcome also equals its name (``BINARY == "binary"``), so that configuration values and
code written against the old strings keep comparing true rather than silently false;
metamed's own code asks the outcome instead of comparing names
(``tests/test_outcomes.py`` checks ``src/``).  Each outcome is one value: pickling or
copying gives the same object back.

torch is imported inside the loss methods only: cohorts, schemas and the command line's
input checks import this module and should not pay torch's start-up time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from metamed.errors import MetamedValueError, did_you_mean

if TYPE_CHECKING:
    import torch

__all__ = [
    "Outcome",
    "BinaryOutcome",
    "NumericOutcome",
    "BINARY",
    "NUMERIC",
    "OUTCOMES",
    "TargetScaling",
    "as_outcome",
]

#: Largest magnitude a label may have: models compute in float32, where more is inf.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TargetScaling:
    """Standardisation of a target: models learn ``(y - mean) / std``.

    The identity (``mean=0, std=1``) for outcomes that are not scaled.
    """

    mean: float = 0.0
    std: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0

    def transform(self, y: Any) -> Any:
        """``(y - mean) / std`` for an array or tensor (its dtype is kept)."""
        return (y - self.mean) / self.std

    def inverse(self, z: Any) -> Any:
        """Predictions back in the outcome's units: ``z * std + mean``."""
        return z * self.std + self.mean


class Outcome(ABC):
    """What a task predicts; see the module docstring for what an outcome decides.

    Subclasses are stateless values: ``BinaryOutcome() == BINARY == "binary"``.
    """

    __slots__ = ()

    #: The serialised form, the CLI's ``--outcome-type`` value and the metric registry's
    #: outcome kind.
    name: ClassVar[str]
    #: Label values of a classification outcome, ``None`` for a measurement.
    classes: ClassVar[tuple[float, ...] | None]
    #: Metric names (see :mod:`metamed.evaluation.metrics`) scored by default, primary first.
    default_metrics: ClassVar[tuple[str, ...]]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Outcome):
            return type(self) is type(other)
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)  # equal to its name, so hashed like it

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return as_outcome, (self.name,)  # unpickled and copied as the one value

    # -- labels ------------------------------------------------------------------------
    def check_labels(self, y: ArrayLike, where: str, column: str | None = None) -> np.ndarray:
        """``y`` as a 1-D array of valid labels, or one error naming where they are.

        Parameters
        ----------
        y : array-like of shape (n,)
            Labels as numbers; a float32 array comes back without a copy.
        where : str
            What holds the labels, for messages, e.g. ``"Task 'h1'"`` or ``"heart"``.
        column : str, optional
            The outcome column's name, for messages.

        Raises
        ------
        MetamedValueError
            A missing label, a value beyond float32 range, or (classification outcomes)
            a value that is not one of :attr:`classes`.
        """
        values = np.asarray(y)
        if values.dtype.kind not in "iuf":
            values = values.astype(np.float64)
        values = values.reshape(-1)
        named = f" '{column}'" if column else ""
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        if missing.any():
            raise MetamedValueError(
                f"{where}: the outcome{named} is missing in {int(missing.sum())} row(s) (first: "
                f"row {int(np.flatnonzero(missing)[0])}). Drop those patients or impute the "
                "outcome first."
            )
        huge = np.abs(values) > _FLOAT32_MAX
        if huge.any():
            row = int(np.flatnonzero(huge)[0])
            value = float(values[row])
            said = "an infinite value" if np.isinf(value) else f"{value:.3g}"
            raise MetamedValueError(
                f"{where}: the outcome{named} holds {said} (row {row}), beyond the float32 range "
                f"models compute in (±{_FLOAT32_MAX:.2g}); such a value is usually an entry or "
                "unit error. Correct it or drop the row."
            )
        if self.classes is not None:
            other = ~np.isin(values, self.classes)
            if other.any():
                shown = [float(v) for v in np.unique(values[other])[:5]]
                codes = "/".join(f"{c:g}" for c in self.classes)
                raise MetamedValueError(
                    f"{where}: a {self.name} outcome{named} must hold {codes}, got also "
                    f"{shown}. {self._recode_hint}"
                )
        return values

    #: How to fix labels outside :attr:`classes` (classification outcomes).
    _recode_hint: ClassVar[str] = ""

    @abstractmethod
    def describe(self, y: Any) -> dict[str, int | float]:
        """A task's label summary (array or Series) for tables and run configurations."""

    # -- support sets --------------------------------------------------------------------
    #: Smallest K whose support set can hold a row of every support group.
    min_support: ClassVar[int] = 1
    #: What every support set must hold, for messages.
    support_needs: ClassVar[str] = "at least one labelled patient"

    def support_groups(self, y: np.ndarray) -> list[np.ndarray]:
        """Row groups every support set must draw at least one row from.

        All rows form one group unless the outcome says otherwise (a binary outcome:
        positives and negatives, so that a support set holds both classes).  Splits of
        a task's rows keep the groups' proportions.
        """
        return [np.arange(len(y))]

    def missing_class(self, y: np.ndarray) -> str | None:
        """The class ``y`` lacks entirely (``"positive"``), or None (always for measurements)."""
        return None

    # -- training ------------------------------------------------------------------------
    def fit_scaling(self, y: np.ndarray) -> TargetScaling:
        """The target standardisation fitted on training labels (identity by default)."""
        return TargetScaling()

    @abstractmethod
    def row_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of each row (no reduction) of model ``output`` against scaled labels ``y``."""

    @abstractmethod
    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss over all entries (the pooled models' minibatch loss)."""

    @abstractmethod
    def loss_gradient(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Derivative of :meth:`row_losses` with respect to ``output``, row by row."""

    # -- prediction ----------------------------------------------------------------------
    #: Adapted models of this outcome have ``predict_proba`` (their scored prediction).
    predicts_probabilities: ClassVar[bool] = False

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """The prediction the default metrics score, from an adapted ``model``."""
        return np.asarray(model.predict(X), dtype=float)


class BinaryOutcome(Outcome):
    """A 0/1 outcome (1 = the event): logits, BCE with logits, P(y = 1) is scored."""

    __slots__ = ()

    name: ClassVar[str] = "binary"
    classes: ClassVar[tuple[float, ...] | None] = (0.0, 1.0)
    default_metrics: ClassVar[tuple[str, ...]] = (
        "auroc",
        "auprc",
        "brier",
        "ece",
        "calibration_slope",
        "calibration_intercept",
    )
    min_support: ClassVar[int] = 2
    support_needs: ClassVar[str] = "at least one patient of each class"
    predicts_probabilities: ClassVar[bool] = True
    _recode_hint: ClassVar[str] = (
        "Recode it to 0/1 (1 = the event), or declare the outcome numeric "
        "(outcome_type='numeric', --outcome-type numeric) if the values are measurements."
    )

    def describe(self, y: Any) -> dict[str, int | float]:
        """Positives and prevalence."""
        return {"positives": int(y.sum()), "prevalence": float(y.mean())}

    def support_groups(self, y: np.ndarray) -> list[np.ndarray]:
        """Positives, then negatives (the order every episode seed was drawn with)."""
        return [np.flatnonzero(y > 0.5), np.flatnonzero(y <= 0.5)]

    def missing_class(self, y: np.ndarray) -> str | None:
        """``"positive"`` or ``"negative"`` when ``y`` holds the other class only."""
        n_pos = int((y > 0.5).sum())
        if n_pos == 0:
            return "positive"
        return "negative" if n_pos == len(y) else None

    def row_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F  # see the module docstring

        return F.binary_cross_entropy_with_logits(output, y, reduction="none")

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.binary_cross_entropy_with_logits(output, y)

    def loss_gradient(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sigmoid(output) - y

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, from ``model.predict_proba``."""
        return np.asarray(model.predict_proba(X), dtype=float)


class NumericOutcome(Outcome):
    """A measurement: standardised targets, squared error, values are scored."""

    __slots__ = ()

    name: ClassVar[str] = "numeric"
    classes: ClassVar[tuple[float, ...] | None] = None
    default_metrics: ClassVar[tuple[str, ...]] = ("rmse", "mae", "r2")

    def describe(self, y: Any) -> dict[str, int | float]:
        """Mean of the outcome."""
        return {"outcome_mean": float(y.mean())}

    def fit_scaling(self, y: np.ndarray) -> TargetScaling:
        """Mean and standard deviation of the training labels (in float64).

        A constant outcome has standard deviation 0; dividing by 1 keeps it finite.
        """
        values = np.asarray(y, dtype=np.float64)
        std = float(values.std())
        return TargetScaling(float(values.mean()), std if std > 0 else 1.0)

    def row_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (output - y) ** 2

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.mean((output - y) ** 2)

    def loss_gradient(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2.0 * (output - y)


BINARY = BinaryOutcome()
NUMERIC = NumericOutcome()

#: Every outcome type by name.
OUTCOMES: Mapping[str, Outcome] = MappingProxyType({o.name: o for o in (BINARY, NUMERIC)})

_NOT_YET = {
    "survival": " Survival outcomes are not supported yet: derive a fixed-horizon binary "
    "outcome (event before the horizon) first.",
}


def as_outcome(value: Outcome | str, what: str = "outcome_type") -> Outcome:
    """The :class:`Outcome` ``value`` names (an outcome is returned as it is).

    Parameters
    ----------
    value : Outcome or str
        An outcome, or its name (``"binary"``, ``"numeric"``).
    what : str
        How messages name the argument, e.g. ``"outcome_type (--outcome-type)"``.

    Raises
    ------
    MetamedValueError
        For any other value, with a "did you mean" for a misspelt name.
    """
    if isinstance(value, Outcome):
        return value
    if isinstance(value, str) and value in OUTCOMES:
        return OUTCOMES[value]
    hint = did_you_mean(value, OUTCOMES) if isinstance(value, str) else ""
    known = ", ".join(repr(name) for name in OUTCOMES)
    raise MetamedValueError(
        f"{what} must be one of {known}, got {value!r}.{hint}{_NOT_YET.get(str(value), '')}"
    )
