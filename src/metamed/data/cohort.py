"""`Schema` and `Cohort`: one patient-level table with declared column roles.

A cohort is the single entry point for every dataset, real or simulated.  The schema
says which columns are model inputs (numeric, categorical, code sets), which is the
outcome, which are *group* columns (site, condition, patient) that define tasks and
are never inputs, and which are *reference* columns: a clinical score kept beside the
patient (APACHE IVa predicted mortality, SAPS-I, a trial's risk score) for a baseline
to compare against, never an input either.  What the outcome is (binary, numeric) is an
:class:`~metamed.outcomes.Outcome`, which also validates its labels.  Later capabilities
plug in here: new outcome types (survival with an ``event_col``), code-set columns
(``;``-separated codes), and patients as tasks (a ``patient_id`` group column).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.outcomes import BINARY, Outcome, as_outcome

__all__ = [
    "CODESET_SEPARATOR",
    "MAX_ABS_VALUE",
    "Cohort",
    "Schema",
    "check_numeric_range",
    "validate_frame",
]

#: Separator between codes inside one code-set cell, e.g. ``"I10;E11.9;N18.3"``.
CODESET_SEPARATOR = ";"

#: Largest magnitude of a numeric input or outcome.  Models compute in float32, where a
#: value beyond this becomes inf: 1e308 is finite in a CSV but not in a model.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)

#: A two-valued feature can line up with a binary outcome by chance in a tiny table.  With
#: at least this many patients in the smaller class the chance is below 1 in 180,000
#: (1 / C(20, 10)) per column, so a perfect one-to-one match is a recoded copy of the label.
MIN_CLASS_ROWS_FOR_RELABEL_CHECK = 10


@dataclass(frozen=True)
class Schema:
    """Roles of a cohort's columns.

    Parameters
    ----------
    outcome : str
        Outcome column.  Binary outcomes hold 0/1; numeric outcomes hold real values.
    numeric, categorical, codesets : tuple of str
        Input feature columns by kind.  Code-set cells hold ``;``-separated codes.
    group : tuple of str
        Columns that define tasks (site, condition, patient).  Never model inputs.
    outcome_type : Outcome or {"binary", "numeric"}, default BINARY
        What the outcome is (:mod:`metamed.outcomes`); a name is turned into the outcome.
    event_col : str, optional
        Event indicator (1 = event observed), kept for survival outcomes (not supported
        yet); never a model input.
    units : dict
        Units of columns where known, e.g. ``{"chol": "mg/dL"}``.
    reference : tuple of str
        Numeric clinical scores or predictions kept for comparison (a baseline method
        reads them; missing where the score was not computed).  Never model inputs: a
        score summarises other inputs, often as the outcome's own predicted risk, and a
        model fed it would learn to copy the score instead of the patient.
    """

    outcome: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    codesets: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    outcome_type: Outcome = BINARY
    event_col: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    reference: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("numeric", "categorical", "codesets", "group", "reference"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "outcome_type", as_outcome(self.outcome_type))
        roles: dict[str, str] = {}
        for role in ("numeric", "categorical", "codesets", "group", "reference"):
            for col in getattr(self, role):
                if col in roles:
                    raise MetamedValueError(
                        f"Column '{col}' is declared both {roles[col]} and {role}; "
                        "give each column one role."
                    )
                roles[col] = role
        for special in (self.outcome, self.event_col):
            if special and special in roles:
                raise MetamedValueError(
                    f"Column '{special}' is the outcome and also declared {roles[special]}; "
                    "an outcome can never be a model input, a group or a reference column."
                )

    @property
    def features(self) -> tuple[str, ...]:
        """All input columns, in a fixed order (numeric, categorical, code sets)."""
        return self.numeric + self.categorical + self.codesets

    @property
    def columns(self) -> tuple[str, ...]:
        extra = (self.event_col,) if self.event_col else ()
        return self.features + self.group + self.reference + (self.outcome,) + extra

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "outcome": self.outcome,
            "outcome_type": self.outcome_type.name,
            "event_col": self.event_col,
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "codesets": list(self.codesets),
            "group": list(self.group),
            "units": dict(self.units),
        }
        # Only when there are any: a schema without reference columns serialises exactly
        # as before the role existed, so saved models and dataset fingerprints stay valid.
        if self.reference:
            state["reference"] = list(self.reference)
        return state


@dataclass(frozen=True)
class Cohort:
    """A validated patient-level table with its schema and provenance.

    ``provenance`` carries at least ``source`` (where the data came from), ``licence``
    and ``checksums`` (file name -> sha256) so that every result can name its data.
    """

    name: str
    frame: pd.DataFrame
    schema: Schema
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_frame(self.frame, self.schema, self.name)

    def with_schema(self, schema: Schema) -> Cohort:
        return replace(self, schema=schema)

    @property
    def n_patients(self) -> int:
        return len(self.frame)


def validate_frame(frame: pd.DataFrame, schema: Schema, name: str = "cohort") -> None:
    """Check that ``frame`` fits ``schema``; raise one clear error otherwise."""
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        col = missing[0]
        raise MetamedValueError(
            f"{name}: column '{col}' named in the schema is not in the table."
            f"{did_you_mean(col, map(str, frame.columns))} "
            f"Table columns: {', '.join(map(str, frame.columns))}."
        )
    numeric = list(schema.numeric)
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))  # an image cohort has thousands of columns
    for col in numeric:
        if not _is_numeric_dtype(dtypes[col]):
            bad = _first_non_numeric(frame[col])
            raise MetamedTypeError(
                f"{name}: numeric column '{col}' holds non-numeric values (e.g. {bad!r}). "
                "Declare it categorical (--categorical-cols) or clean the values."
            )
    for columns in _column_chunks(numeric):  # many columns at once; the first out of range named
        values = frame[columns].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            out_of_range = np.flatnonzero((np.abs(values) > MAX_ABS_VALUE).any(axis=0))
        if len(out_of_range):
            col = columns[int(out_of_range[0])]
            check_numeric_range(values[:, out_of_range[0]], f"{name}: numeric column '{col}'")
    for col in schema.reference:
        if not _is_numeric(frame[col]):
            raise MetamedTypeError(
                f"{name}: reference column '{col}' must hold numbers (a clinical score or "
                f"predicted risk, empty where not computed), got e.g. "
                f"{_first_non_numeric(frame[col])!r}."
            )
        check_numeric_range(
            frame[col].to_numpy(dtype=float, na_value=np.nan), f"{name}: reference column '{col}'"
        )
    _check_outcome(frame[schema.outcome], schema, name)
    for col in schema.group:
        if frame[col].isna().any():
            raise MetamedValueError(
                f"{name}: group column '{col}' is empty in {int(frame[col].isna().sum())} row(s); "
                "every patient must belong to a task."
            )
        _check_one_spelling_per_task(frame[col], col, name)
    _check_no_outcome_copy(frame, schema, name)


def _check_outcome(y: pd.Series, schema: Schema, name: str) -> None:
    """The outcome column holds numbers that are valid labels of the schema's outcome."""
    numbers = pd.to_numeric(y, errors="coerce") if not _is_numeric(y) else y
    text = numbers.isna() & y.notna()
    if text.any():
        raise MetamedTypeError(
            f"{name}: the {schema.outcome_type} outcome '{schema.outcome}' must hold numbers, "
            f"got {y[text].iloc[0]!r} (dtype {y.dtype}). Recode it (cohort_from_table codes a "
            "two-valued text outcome with positive_label)."
        )
    values = numbers.to_numpy(dtype=float, na_value=np.nan)
    schema.outcome_type.check_labels(values, name, column=schema.outcome)


def check_numeric_range(values: np.ndarray, what: str) -> None:
    """Raise for an infinite value or a finite one beyond float32 range; NaN (missing) passes.

    Parameters
    ----------
    values : ndarray of float64
    what : str
        How the message names the values, e.g. ``"cohort: numeric column 'age'"``.
    """
    with np.errstate(invalid="ignore"):
        bad = np.abs(values) > MAX_ABS_VALUE  # inf included; NaN compares False
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = float(values[row])
    if np.isinf(value):
        raise MetamedValueError(
            f"{what} holds an infinite value (row {row}). "
            "Replace it with a finite value or leave the cell empty (missing)."
        )
    raise MetamedValueError(
        f"{what} holds {value:.3g} (row {row}), beyond the largest magnitude models compute "
        f"with ({MAX_ABS_VALUE:.2g}, float32); such a value is usually a unit or entry error. "
        "Correct it or leave the cell empty (missing)."
    )


def _check_one_spelling_per_task(series: pd.Series, col: str, name: str) -> None:
    """Refuse task values that differ only by letter case or surrounding whitespace.

    "Cleveland" and "cleveland " would otherwise be two tasks: one hospital would sit in
    both meta-training and the held-out set, and leave-one-site-out would silently become
    a random split.  Whether they name one site or two is for the user to say.
    """
    values = pd.Series(pd.unique(series.astype(str)))
    spelling = values.str.strip().str.casefold()
    if not spelling.duplicated().any():  # the common case, without grouping every value
        return
    clashes = [sorted(group) for _, group in values.groupby(spelling) if len(group) > 1]
    if clashes:
        shown = "; ".join(" / ".join(map(repr, group)) for group in clashes[:3])
        raise MetamedValueError(
            f"{name}: task column '{col}' has values that differ only by letter case or "
            f"surrounding whitespace ({shown}); metamed will not guess whether they name one "
            "task or two. Spell each task one way in the table (cohort_from_table strips "
            "surrounding whitespace itself)."
        )


def _is_numeric(series: pd.Series) -> bool:
    return _is_numeric_dtype(series.dtype)


def _is_numeric_dtype(dtype: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


def _check_no_outcome_copy(frame: pd.DataFrame, schema: Schema, name: str) -> None:
    """Refuse a feature column that is the outcome under another name (a label leak).

    A repeated header (pandas renames the second ``died`` to ``died.1``), a kept export
    column or a recoded copy hands the label to every model (AUROC 1.000).  Refused
    rather than dropped: a table holding such a column usually holds other leaks too, and
    only its owner can say which columns were recorded after the outcome.
    """
    y = frame[schema.outcome]
    y_values = y.to_numpy(dtype=float) if _is_numeric(y) else None
    n_smaller_class = (
        int(y.value_counts().min()) if schema.outcome_type.classes is not None and len(y) else 0
    )
    features = list(schema.features)
    if y_values is not None and not np.isnan(y_values).any():
        # Numeric features all at once (an image has thousands of pixel columns): only the
        # columns that could fail either check below are looked at one by one.
        dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
        numeric = [c for c in features if _is_numeric_dtype(dtypes[c])]
        suspects = set(_outcome_copy_suspects(frame, numeric, y_values, n_smaller_class))
        numeric_set = set(numeric)
        features = [c for c in features if c not in numeric_set or c in suspects]
    for col in features:
        x = frame[col]
        if y_values is not None and _is_numeric(x):
            if np.array_equal(x.to_numpy(dtype=float, na_value=np.nan), y_values):
                raise MetamedValueError(
                    f"{name}: feature column '{col}' holds the same values as the outcome "
                    f"'{schema.outcome}' in every row: a copy of the label would leak it into "
                    f"the inputs. Drop it (--drop-cols {col}, drop_cols=['{col}'])."
                )
        if (
            n_smaller_class >= MIN_CLASS_ROWS_FOR_RELABEL_CHECK
            and x.notna().all()
            and x.nunique() == 2
            and (frame.groupby(x, observed=True)[schema.outcome].nunique() == 1).all()
        ):
            raise MetamedValueError(
                f"{name}: feature column '{col}' is a recoded copy of the {schema.outcome_type} outcome "
                f"'{schema.outcome}': its two values match the outcome's classes one to one in "
                f"all {len(frame)} rows, which leaks the label into the inputs. Drop it "
                f"(--drop-cols {col}, drop_cols=['{col}'])."
            )


#: Columns checked at once: a block of float64 copies stays small (4,096 columns of 3,000
#: rows: 100 MB) even for a cohort of 64^3 voxels a row (262,144 columns).
_CHUNK_COLUMNS = 4096


def _column_chunks(columns: list[str]) -> list[list[str]]:
    return [columns[i : i + _CHUNK_COLUMNS] for i in range(0, len(columns), _CHUNK_COLUMNS)]


def _outcome_copy_suspects(
    frame: pd.DataFrame, numeric: list[str], y: np.ndarray, n_smaller_class: int
) -> list[str]:
    """The numeric columns that equal the outcome ``y`` (finite) in every row, or (when the
    smaller class is large enough for the relabel check) hold exactly two values each of
    which goes with one outcome value: :func:`_check_no_outcome_copy`'s two tests, computed
    on many columns at once.  The caller re-checks each suspect with the column test."""
    return [
        col
        for columns in _column_chunks(numeric)
        for col in _suspects_among(frame, columns, y, n_smaller_class)
    ]


def _suspects_among(
    frame: pd.DataFrame, numeric: list[str], y: np.ndarray, n_smaller_class: int
) -> list[str]:
    """:func:`_outcome_copy_suspects` among the columns ``numeric``, all at once."""
    if not numeric:
        return []
    X = frame[numeric].to_numpy(dtype=float, na_value=np.nan)
    suspect = (X == y[:, None]).all(axis=0)
    if n_smaller_class >= MIN_CLASS_ROWS_FOR_RELABEL_CHECK and len(X):
        complete = ~np.isnan(X).any(axis=0)
        low, high = X.min(axis=0), X.max(axis=0)
        two = complete & (low != high) & ((X == low) | (X == high)).all(axis=0)
        for j in np.flatnonzero(two):
            at_high = X[:, j] == high[j]
            if np.ptp(y[at_high]) == 0 and np.ptp(y[~at_high]) == 0:
                suspect[j] = True
    return [numeric[j] for j in np.flatnonzero(suspect)]


def _first_non_numeric(series: pd.Series) -> object:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = series[coerced.isna() & series.notna()]
    return bad.iloc[0] if len(bad) else series.iloc[0]
