"""Patient rows checked against a model's input schema before they reach the model.

The preprocessor accepts almost anything: an unseen category becomes ``<other>``, a
value far outside the training data is scaled like any other.  At a site that is how a
wrong unit (a weight in grams), a typo (an age of 400) or a new coding of a field turns
into a confident, wrong risk.  :class:`InputSchema`, read from the artifact's feature
schema, refuses such rows with one :class:`~metamed.errors.InvalidInputError` naming
the column, the row and what was expected:

- a missing input column; in JSON records also an unknown key (with "did you mean");
  a CSV may carry extra columns (an id, notes), which are reported and ignored;
- a value of the wrong type (text where a number is expected, a boolean);
- a numeric value outside the **allowed range**: the range seen at meta-training widened
  by its own width on each side, and never below 0 when no training value was negative
  (an age of 400, a negative heart rate).  Values that far out are extrapolation, not
  prediction;
- a category the model never saw (with "did you mean");
- no rows, or more than ``max_rows``;
- for adaptation: a missing, non-0/1 (binary) or non-numeric outcome.

Missing values (JSON ``null``, an empty CSV cell) are accepted: the model imputes them
as it did at meta-training.  Codes in a code-set column are open-ended (new codes are
ignored by the model, as at meta-training).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.preprocess import _category_key
from metamed.errors import InvalidInputError, did_you_mean
from metamed.outcomes import Outcome, as_outcome

__all__ = [
    "CATEGORICAL",
    "CODESET",
    "ColumnRule",
    "DEFAULT_MAX_ROWS",
    "InputSchema",
    "NUMERIC_COLUMN",
    "allowed_range",
]

#: Column kinds of the manifest's feature schema (``features.columns[].type``).
NUMERIC_COLUMN, CATEGORICAL, CODESET = "numeric", "categorical", "codeset"

#: Rows one request (or one CSV) may hold unless the caller says otherwise.
DEFAULT_MAX_ROWS = 10_000


def allowed_range(observed: Sequence[float] | None) -> tuple[float, float] | None:
    """The values a numeric column accepts, from the range seen at meta-training.

    ``[low - width, high + width]`` with ``width = high - low`` (or ``max(|low|, 1)``
    for a constant column), clipped at 0 when ``low >= 0``.  ``None`` when no range
    was recorded (artifacts saved before ranges were).
    """
    if observed is None:
        return None
    low, high = float(observed[0]), float(observed[1])
    if math.isnan(low) or math.isnan(high):
        return None
    width = high - low if high > low else max(abs(low), 1.0)
    lower = low - width
    if low >= 0:
        lower = max(lower, 0.0)
    return lower, high + width


@dataclass(frozen=True)
class ColumnRule:
    """What one input column accepts."""

    name: str
    type: str  # numeric | categorical | codeset
    unit: str | None = None
    allowed: tuple[float, float] | None = None
    observed: tuple[float, float] | None = None
    categories: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.type == NUMERIC_COLUMN:
            unit = f" {self.unit}" if self.unit else ""
            if self.allowed is None:
                return f"a number{unit}"
            return f"a number{unit} in [{self.allowed[0]:.4g}, {self.allowed[1]:.4g}]"
        if self.type == CATEGORICAL:
            return f"one of {', '.join(self.categories)}"
        return "a text of ';'-separated codes"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_finite_number(value: Any) -> bool:
    """A number that fits a float and is finite (JSON allows 1e999 and, in Python, NaN)."""
    if not _is_number(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer with hundreds of digits
        return False


class InputSchema:
    """The input (and outcome) rules of one model, from its manifest's ``features``.

    Parameters
    ----------
    features : dict
        The manifest's ``features`` section (``columns`` as written by
        :func:`metamed.learners.feature_schema`).
    outcome : dict
        The manifest's ``outcome`` section (``kind``, ``column``).
    max_rows : int
        Most rows accepted at once.
    """

    def __init__(
        self,
        features: Mapping[str, Any],
        outcome: Mapping[str, Any],
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        rules = []
        for col in features.get("columns", []):
            levels = col.get("categories") or []
            rules.append(
                ColumnRule(
                    name=col["name"],
                    type=col["type"],
                    unit=col.get("unit"),
                    allowed=allowed_range(col.get("range"))
                    if col["type"] == NUMERIC_COLUMN
                    else None,
                    observed=tuple(col["range"]) if col.get("range") else None,
                    # The "<missing>" level is what an empty cell becomes; it is not typed in.
                    categories=tuple(str(v) for v in levels if v != "<missing>"),
                )
            )
        self.columns: tuple[ColumnRule, ...] = tuple(rules)
        self.by_name = {rule.name: rule for rule in rules}
        self.outcome: str = str(outcome.get("column"))
        self.outcome_type: Outcome = as_outcome(str(outcome.get("kind")), "the manifest's outcome")
        self.max_rows = int(max_rows)

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.columns]

    def _count(self, n: int) -> None:
        if n == 0:
            raise InvalidInputError("No patient rows were given; send at least one.", field="rows")
        if n > self.max_rows:
            raise InvalidInputError(
                f"{n} rows were given, at most {self.max_rows} are accepted at once; send "
                "them in smaller batches.",
                field="rows",
            )

    def _expected(self, with_outcome: bool) -> list[str]:
        return self.names + ([self.outcome] if with_outcome else [])

    # -- JSON records --------------------------------------------------------------------
    def check_records(self, records: Sequence[Any], with_outcome: bool = False) -> pd.DataFrame:
        """Check JSON records (one object per patient); return them as a table.

        Every key must be an input column (or the outcome, when ``with_outcome``) and
        every input column present (``null`` for a missing value).
        """
        if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
            raise InvalidInputError("rows must be a list of patient records.", field="rows")
        self._count(len(records))
        expected = self._expected(with_outcome)
        known = set(expected)
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidInputError(
                    f"Row {i} is a {type(record).__name__}, not an object of column: value.",
                    field=f"rows[{i}]",
                    row=i,
                )
            for key in record:
                if key not in known:
                    hint = did_you_mean(str(key), expected)
                    raise InvalidInputError(
                        f"Row {i} has an unknown column '{key}'.{hint} The model takes "
                        f"{', '.join(expected)}.",
                        field=str(key),
                        row=i,
                    )
            for name in expected:
                if name not in record:
                    what = "outcome" if name == self.outcome else "input column"
                    raise InvalidInputError(
                        f"Row {i} lacks {what} '{name}' (use null for a missing value"
                        f"{'' if name != self.outcome else '; the outcome cannot be missing'}).",
                        field=name,
                        row=i,
                    )
            for rule in self.columns:
                self._check_json_value(rule, record[rule.name], i)
        frame = pd.DataFrame.from_records(list(records), columns=expected)
        self._check_values(frame)
        if with_outcome:
            self._check_outcome(frame)
        return frame

    def _check_json_value(self, rule: ColumnRule, value: Any, row: int) -> None:
        if value is None:
            return
        if rule.type == NUMERIC_COLUMN:
            ok = _is_finite_number(value)
        elif rule.type == CATEGORICAL:
            ok = isinstance(value, str) or _is_finite_number(value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise InvalidInputError(
                f"Row {row}, column '{rule.name}': expected {rule.describe()} (or null), got "
                f"{_show(value)}.",
                field=rule.name,
                row=row,
            )

    # -- tables (CSV) --------------------------------------------------------------------
    def check_frame(
        self, frame: pd.DataFrame, with_outcome: bool = False
    ) -> tuple[pd.DataFrame, list[str]]:
        """Check a table of patient rows; return its checked columns and the ignored ones."""
        self._count(len(frame))
        present = [str(c) for c in frame.columns]
        expected = self._expected(with_outcome)
        for name in expected:
            if name not in present:
                what = "outcome column" if name == self.outcome else "input column"
                raise InvalidInputError(
                    f"The table lacks {what} '{name}'.{did_you_mean(name, present)} "
                    f"Expected columns: {', '.join(expected)}.",
                    field=name,
                )
        ignored = [c for c in present if c not in set(expected)]
        frame = frame.loc[:, expected]
        for rule in self.columns:
            column = frame[rule.name]
            if rule.type == NUMERIC_COLUMN and not (
                pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            ):
                bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
                if len(bad):
                    row = int(np.flatnonzero(frame.index == bad.index[0])[0])
                    raise InvalidInputError(
                        f"Row {row}, column '{rule.name}': expected {rule.describe()}, got "
                        f"{_show(bad.iloc[0])}.",
                        field=rule.name,
                        row=row,
                    )
        self._check_values(frame)
        if with_outcome:
            self._check_outcome(frame)
        return frame, ignored

    # -- shared value checks ---------------------------------------------------------------
    def _check_values(self, frame: pd.DataFrame) -> None:
        for rule in self.columns:
            column = frame[rule.name]
            if rule.type == NUMERIC_COLUMN and rule.allowed is not None:
                values = (
                    column.to_numpy(dtype=np.float64, na_value=np.nan)
                    if pd.api.types.is_numeric_dtype(column)
                    else pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
                )
                with np.errstate(invalid="ignore"):
                    out = np.flatnonzero(
                        ~np.isnan(values)
                        & ((values < rule.allowed[0]) | (values > rule.allowed[1]))
                    )
                if len(out):
                    row = int(out[0])
                    seen = rule.observed or rule.allowed
                    raise InvalidInputError(
                        f"Row {row}, column '{rule.name}': {values[row]:.6g} is outside the "
                        f"accepted range [{rule.allowed[0]:.4g}, {rule.allowed[1]:.4g}]"
                        f"{' ' + rule.unit if rule.unit else ''} (meta-training saw "
                        f"{seen[0]:.4g} to {seen[1]:.4g}); check the value and "
                        "its unit.",
                        field=rule.name,
                        row=row,
                    )
            elif rule.type == CATEGORICAL:
                known = set(rule.categories)
                for row, value in enumerate(column.tolist()):
                    if value is None or (isinstance(value, float) and math.isnan(value)):
                        continue
                    key = _category_key(value)
                    if key not in known:
                        raise InvalidInputError(
                            f"Row {row}, column '{rule.name}': unknown category {_show(value)}."
                            f"{did_you_mean(key, rule.categories)} The model knows "
                            f"{', '.join(rule.categories)}.",
                            field=rule.name,
                            row=row,
                        )

    def _check_outcome(self, frame: pd.DataFrame) -> None:
        classes = self.outcome_type.classes
        expected = " or ".join(f"{c:g}" for c in classes) if classes else "a number"
        for row, value in enumerate(frame[self.outcome].tolist()):
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            if missing or not _is_finite_number(value):
                raise InvalidInputError(
                    f"Row {row}, outcome '{self.outcome}': expected {expected}, got "
                    f"{'nothing' if missing else _show(value)}; every support patient needs "
                    "a known outcome.",
                    field=self.outcome,
                    row=row,
                )
            if classes is not None and float(value) not in classes:
                raise InvalidInputError(
                    f"Row {row}, outcome '{self.outcome}': a {self.outcome_type} outcome is "
                    f"{expected}, got {_show(value)}.",
                    field=self.outcome,
                    row=row,
                )
        y = frame[self.outcome].to_numpy(dtype=np.float64)
        lacking = self.outcome_type.missing_class(y)
        if lacking is not None:
            raise InvalidInputError(
                f"The support set holds one class only (all {self.outcome} = {y[0]:g}), no "
                f"{lacking} patient; adaptation needs {self.outcome_type.support_needs}.",
                field=self.outcome,
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
