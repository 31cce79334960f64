"""Bring your own data: read a CSV / Parquet table and declare its column roles.

The rules are deliberately simple and predictable, so that a user can say in advance
what metamed will do with each column:

* numeric dtypes (int, float) are numeric features;
* text, boolean and pandas ``category`` columns are categorical features;
* a text column whose values are mostly numbers is an error (it is usually a numeric
  column with a few typos such as ``"<5"`` or ``"n/a"``): clean it or declare it
  categorical;
* a text column with very many distinct values (an identifier, free text) is an error:
  drop it or declare it categorical explicitly;
* column names must be unique, checked on the file's own header (pandas would rename a
  repeated ``died`` to ``died.1`` and leak the outcome into the features); a feature that
  is a copy of the outcome is refused (:func:`~metamed.data.cohort.validate_frame`);
* the outcome is binary when its values are within {0, 1}; 1/2 (R's survival ``status``)
  is binary with 2 as the positive class, said in a :class:`~metamed.errors.MetamedWarning`
  (``positive_label`` overrides); other whole numbers with few distinct values (0/1/2,
  1..5) look like class codes and need an explicit ``outcome_type``; other numbers are
  numeric.  A text outcome must be recoded or given a ``positive_label``;
* task values lose surrounding whitespace (with a warning: ``"a "`` and ``"a"`` are one
  hospital); values that still differ only by letter case are refused, since only the
  user knows whether ``"Cleveland"`` and ``"cleveland"`` are one site.

Every problem raises one :class:`~metamed.errors.MetamedError` saying what is wrong
and how to fix it.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.preprocess import _category_key
from metamed.data.registry import sha256_file
from metamed.errors import (
    DataNotFoundError,
    MetamedTypeError,
    MetamedValueError,
    MetamedWarning,
    unknown_name,
)
from metamed.outcomes import BINARY, NUMERIC, Outcome, as_outcome

__all__ = [
    "TABLE_SUFFIXES",
    "check_unique_columns",
    "cohort_from_table",
    "infer_schema",
    "load_table",
]

#: File endings load_table understands, and the reader for each.
TABLE_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# A text column is "mostly numbers" when at least this share of its non-missing cells
# parse as numbers: then the text cells are almost certainly typos or codes for missing.
_MOSTLY_NUMERIC_SHARE = 0.8

#: Default limit on distinct values of an undeclared text column (one-hot width).
DEFAULT_MAX_LEVELS = 100

# A whole-number outcome with at most this many distinct values (0/1/2, a 1-5 grade) may
# be class codes or a count; guessing "numeric" ran 0/1/2 outcomes silently as regression.
_MAX_CLASS_CODES = 10

# R's survival ``status`` coding (1 = censored, 2 = event): binary, with 2 as positive.
_ONE_TWO_CODING = (1.0, 2.0)


def _table_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(TABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return TABLE_SUFFIXES[suffix]
    raise MetamedValueError(
        f"Cannot read '{path.name}': unknown file type. Expected one of "
        f"{', '.join(TABLE_SUFFIXES)}; convert the table to CSV or Parquet."
    )


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``), TSV or Parquet (``.parquet``, ``.pq``) table.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    DataFrame

    Raises
    ------
    DataNotFoundError
        No such file.
    MetamedValueError
        Unknown extension, or the file cannot be parsed (the parser's message is kept).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise MetamedTypeError(
            f"load_table: path must be a file path (str or Path), got {type(path).__name__}."
        )
    path = Path(path).expanduser()
    kind = _table_kind(path)
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise DataNotFoundError(f"Table file '{path}' {where}; check the path.")
    try:
        # The header as written in the file: pandas renames a repeated name on reading.
        check_unique_columns(_raw_header(path, kind), f"Table '{path.name}'")
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, MetamedValueError):
            raise
        # pandas' ParserError/EmptyDataError and pyarrow's ArrowInvalid are ValueErrors.
        raise MetamedValueError(
            f"Cannot read '{path.name}' as {kind.upper()}: {type(exc).__name__}: {exc}. "
            f"Check that the file is a valid {kind.upper()} file (UTF-8 text with a header "
            "row for CSV/TSV)."
        ) from exc
    if frame.shape[1] == 0 or len(frame) == 0:
        raise MetamedValueError(
            f"Table '{path.name}' has {len(frame)} rows and {frame.shape[1]} columns; "
            "a cohort needs at least one patient row and a header."
        )
    return frame


def _raw_header(path: Path, kind: str) -> list[str]:
    """Column names exactly as the file holds them, repeats included."""
    if kind == "parquet":
        import pyarrow.parquet as pq  # pandas' parquet engine

        return list(pq.read_schema(path).names)
    first_row = pd.read_csv(
        path,
        sep="\t" if kind == "tsv" else ",",
        header=None,
        nrows=1,
        dtype=str,
        keep_default_na=False,
    )
    return first_row.iloc[0].tolist()


def check_unique_columns(names: Iterable[object], where: str) -> None:
    """Raise when a column name occurs more than once.

    Parameters
    ----------
    names : iterable
        Column names in table order (a list, or a DataFrame's ``columns``).
    where : str
        How the message names the table, e.g. ``"Table 'icu.csv'"``.
    """
    counts = Counter(str(n) for n in names)
    repeated = sorted(n for n, count in counts.items() if count > 1)
    if repeated:
        shown = ", ".join(f"'{n}' x{counts[n]}" for n in repeated)
        raise MetamedValueError(
            f"{where} has duplicated column names ({shown}). A repeated outcome column would "
            "be read as a feature and leak the label; rename or remove the copies."
        )


def _check_columns(frame: pd.DataFrame, names: Sequence[str], what: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if not isinstance(name, str):
            raise MetamedTypeError(
                f"{what}: column names must be text, got {name!r} ({type(name).__name__})."
            )
        if name not in frame.columns:
            error = unknown_name("column", name, columns)
            raise type(error)(f"{what}: {error}")


def _as_list(value: Sequence[str] | str | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    items = list(value)
    if len(set(items)) != len(items):
        dupes = sorted({c for c in items if items.count(c) > 1})
        raise MetamedValueError(f"{what} lists {dupes} more than once.")
    return items


def _is_text(series: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_datetime64_any_dtype(series)
        or pd.api.types.is_timedelta64_dtype(series)
    )


def _check_outcome_type(outcome_type: Outcome | str | None) -> Outcome | None:
    """The declared outcome type, if any (a name becomes the :class:`Outcome`)."""
    if outcome_type is None:
        return None
    return as_outcome(outcome_type, "outcome_type (--outcome-type)")


def _infer_outcome_type(series: pd.Series, col: str) -> Outcome:
    if series.isna().any():
        rows = np.flatnonzero(series.isna().to_numpy())
        raise MetamedValueError(
            f"Outcome '{col}' is missing in {len(rows)} row(s) (first: row {int(rows[0])}). "
            "Drop those patients or impute the outcome before loading."
        )
    if pd.api.types.is_bool_dtype(series):
        return BINARY
    if not pd.api.types.is_numeric_dtype(series):
        values = sorted(map(str, pd.unique(series)))
        hint = (
            f" or name the positive value (--positive-label {values[1]} on the command line, "
            f"positive_label='{values[1]}' in Python) to code it 1/0"
            if len(values) == 2
            else ""
        )
        raise MetamedTypeError(
            f"Outcome '{col}' holds text ({len(values)} distinct values, e.g. {values[:4]}). "
            f"Recode it to 0/1 (binary) or to numbers (numeric){hint}."
        )
    levels = np.unique(series.to_numpy(dtype=float))
    if np.isin(levels, (0.0, 1.0)).all():
        return BINARY
    if len(levels) <= _MAX_CLASS_CODES and (levels == np.round(levels)).all():
        shown = [int(v) for v in levels]
        two = (
            f", or name the value that means 1 (--positive-label {shown[-1]}, "
            f"positive_label={shown[-1]})"
            if len(levels) == 2
            else ""
        )
        raise MetamedValueError(
            f"Outcome '{col}' holds {len(levels)} distinct whole numbers {shown}, which look "
            "like class codes; metamed will not guess whether to predict them as numbers. "
            "Declare the outcome type (--outcome-type numeric, outcome_type='numeric', for a "
            f"count or score), or recode it to 0/1 (1 = the event){two}."
        )
    return NUMERIC


def infer_schema(
    frame: pd.DataFrame,
    task_col: str,
    outcome_col: str,
    feature_cols: Sequence[str] | None = None,
    categorical_cols: Sequence[str] | None = None,
    drop_cols: Sequence[str] | None = None,
    codeset_cols: Sequence[str] | None = None,
    outcome_type: Outcome | str | None = None,
    max_levels: int = DEFAULT_MAX_LEVELS,
    units: dict[str, str] | None = None,
) -> Schema:
    """Declare column roles of a table by the module's rules (see the module docstring).

    Parameters
    ----------
    frame : DataFrame
    task_col : str
        Group column whose values are the tasks (site, condition, patient).
    outcome_col : str
        Outcome column.
    feature_cols : sequence of str, optional
        Input columns; default: every column except task, outcome and ``drop_cols``.
    categorical_cols : sequence of str, optional
        Columns to treat as categorical whatever their dtype (e.g. numeric codes).
    drop_cols : sequence of str, optional
        Columns to ignore (identifiers, dates, leaky columns).
    codeset_cols : sequence of str, optional
        Columns holding ``;``-separated code lists.
    outcome_type : Outcome or {"binary", "numeric"}, optional
        Overrides inference (binary when the outcome values are within {0, 1}).
    max_levels : int, default 100
        Largest number of distinct values of an *undeclared* text column.
    units : dict, optional
        Units of columns, stored in the schema.

    Returns
    -------
    Schema
    """
    if not isinstance(frame, pd.DataFrame):
        raise MetamedTypeError(
            f"infer_schema: frame must be a pandas DataFrame, got {type(frame).__name__}."
        )
    check_unique_columns(frame.columns, "The table")
    categorical = _as_list(categorical_cols, "categorical_cols")
    drop = _as_list(drop_cols, "drop_cols")
    codesets = _as_list(codeset_cols, "codeset_cols")
    _check_columns(frame, [task_col], "task_col")
    _check_columns(frame, [outcome_col], "outcome_col")
    if task_col == outcome_col:
        raise MetamedValueError(
            f"task_col and outcome_col are both '{task_col}'; the task column names the "
            "site/condition, the outcome is what is predicted."
        )
    _check_columns(frame, categorical, "categorical_cols")
    _check_columns(frame, drop, "drop_cols")
    _check_columns(frame, codesets, "codeset_cols")
    special = {task_col, outcome_col}
    for role, cols in (
        ("categorical_cols", categorical),
        ("codeset_cols", codesets),
        ("drop_cols", drop),
    ):
        clash = sorted(special.intersection(cols))
        if clash:
            raise MetamedValueError(
                f"{role} names {clash}, the task or outcome column; those are never features "
                "and cannot be dropped."
            )
    both = sorted(set(categorical) & set(codesets))
    if both:
        raise MetamedValueError(f"Columns {both} are declared both categorical and code sets.")
    if feature_cols is None:
        features = [str(c) for c in frame.columns if c not in special and c not in drop]
    else:
        features = _as_list(feature_cols, "feature_cols")
        _check_columns(frame, features, "feature_cols")
        bad = sorted(special.intersection(features) | set(drop).intersection(features))
        if bad:
            raise MetamedValueError(
                f"feature_cols includes {bad}, which is the task/outcome column or dropped."
            )
        undeclared = [c for c in [*categorical, *codesets] if c not in features]
        if undeclared:
            raise MetamedValueError(
                f"Columns {undeclared} are declared categorical / code sets but are not in "
                "feature_cols; add them to feature_cols or drop the declaration."
            )
    dropped_declared = sorted(set(drop) & (set(categorical) | set(codesets)))
    if dropped_declared:
        raise MetamedValueError(
            f"Columns {dropped_declared} are both dropped and declared as features."
        )
    if not features:
        raise MetamedValueError(
            "No feature column is left after removing the task, outcome and dropped columns."
        )

    numeric_roles: list[str] = []
    categorical_roles: list[str] = []
    for col in features:
        series = frame[col]
        if col in codesets:
            continue
        if col in categorical:
            categorical_roles.append(col)
            continue
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(
            series
        ):
            raise MetamedTypeError(
                f"Column '{col}' holds dates/times ({series.dtype}). Convert it to a number "
                "(e.g. days since admission) or list it in drop_cols."
            )
        if pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype):
            categorical_roles.append(col)
            continue
        if pd.api.types.is_numeric_dtype(series):
            numeric_roles.append(col)
            continue
        present = series.dropna()
        parsed = pd.to_numeric(present, errors="coerce")
        if len(present) and parsed.notna().mean() >= _MOSTLY_NUMERIC_SHARE:
            bad = sorted(map(str, pd.unique(present[parsed.isna()])))[:5]
            raise MetamedTypeError(
                f"Column '{col}' is text but {parsed.notna().mean():.0%} of its values are "
                f"numbers; the others are {bad}. Clean those cells (a number, or empty for "
                "missing), or declare the column categorical (categorical_cols)."
            )
        n_levels = int(present.nunique())
        if n_levels > max_levels:
            raise MetamedValueError(
                f"Text column '{col}' has {n_levels} distinct values (more than max_levels="
                f"{max_levels}); it looks like an identifier or free text. Add it to drop_cols, "
                "or declare it categorical (categorical_cols) to one-hot it anyway."
            )
        categorical_roles.append(col)

    outcome = _check_outcome_type(outcome_type)
    if outcome is None:
        outcome = _infer_outcome_type(frame[outcome_col], outcome_col)
    return Schema(
        outcome=outcome_col,
        numeric=tuple(numeric_roles),
        categorical=tuple(categorical_roles),
        codesets=tuple(c for c in features if c in codesets),
        group=(task_col,),
        outcome_type=outcome,
        units=dict(units or {}),
    )


def cohort_from_table(
    table: pd.DataFrame | str | Path,
    task_col: str,
    outcome_col: str,
    feature_cols: Sequence[str] | None = None,
    categorical_cols: Sequence[str] | None = None,
    drop_cols: Sequence[str] | None = None,
    codeset_cols: Sequence[str] | None = None,
    outcome_type: Outcome | str | None = None,
    positive_label: object | None = None,
    name: str | None = None,
    max_levels: int = DEFAULT_MAX_LEVELS,
    units: dict[str, str] | None = None,
    provenance: dict[str, object] | None = None,
) -> Cohort:
    """Build a :class:`~metamed.data.Cohort` from a table file or DataFrame.

    Parameters
    ----------
    table : DataFrame or path-like
        The table, or a CSV / Parquet file (see :func:`load_table`).
    task_col, outcome_col, feature_cols, categorical_cols, drop_cols, codeset_cols, \
outcome_type, max_levels, units
        As in :func:`infer_schema`.
    positive_label : optional
        For a two-valued outcome (e.g. ``"yes"`` / ``"no"``): the value coded 1; the
        other is coded 0.  Without it a text outcome is an error.
    name : str, optional
        Cohort name; default the file stem or ``"table"``.
    provenance : dict, optional
        Extra provenance (source, licence, citation) merged into the cohort's.

    Returns
    -------
    Cohort
        Only the feature, task and outcome columns are kept.  For a file, provenance
        records its sha256.
    """
    info: dict[str, object] = {"source": "user table", "licence": "unknown (user-supplied)"}
    if isinstance(table, pd.DataFrame):
        check_unique_columns(table.columns, "The table")
        frame = table.copy()
        default_name = "table"
    elif not isinstance(table, (str, os.PathLike)):
        raise MetamedTypeError(
            "cohort_from_table: table must be a pandas DataFrame or the path of a CSV / "
            f"Parquet file, got {type(table).__name__}."
        )
    else:
        path = Path(table).expanduser()
        frame = load_table(path)
        default_name = path.name.split(".")[0]
        info.update(source=str(path.name), checksums={path.name: sha256_file(path)})
    info.setdefault("checksums", {})
    outcome = _check_outcome_type(outcome_type)
    _check_columns(frame, [task_col], "task_col")
    _check_columns(frame, [outcome_col], "outcome_col")
    frame[task_col] = _strip_task_values(frame[task_col], task_col)
    if positive_label is None and outcome in (None, BINARY):
        positive_label = _one_two_positive(frame, outcome_col)
    if positive_label is not None:
        frame[outcome_col] = _binarise(frame[outcome_col], outcome_col, positive_label)
        info["positive_label"] = str(positive_label)
        if outcome not in (None, BINARY):
            raise MetamedValueError(
                "positive_label makes the outcome binary; do not also pass "
                f"outcome_type={str(outcome)!r}."
            )
    schema = infer_schema(
        frame,
        task_col=task_col,
        outcome_col=outcome_col,
        feature_cols=feature_cols,
        categorical_cols=categorical_cols,
        drop_cols=drop_cols,
        codeset_cols=codeset_cols,
        outcome_type=outcome,
        max_levels=max_levels,
        units=units,
    )
    info.update(provenance or {})
    return Cohort(
        name=name or default_name,
        frame=frame.loc[:, list(schema.columns)].reset_index(drop=True),
        schema=schema,
        provenance=info,
    )


def _strip_task_values(series: pd.Series, col: str) -> pd.Series:
    """Task values without surrounding whitespace ("a " and "a" are one hospital); says so.

    A value that is only whitespace becomes missing (and is then refused as such).
    """
    if not (_is_text(series) or isinstance(series.dtype, pd.CategoricalDtype)):
        return series
    raw = series.astype(object)
    stripped = raw.map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
    changed = raw.notna() & (raw != stripped)
    if changed.any():
        examples = ", ".join(repr(v) for v in pd.unique(raw[changed])[:3])
        merged = raw.nunique() - stripped.nunique()
        warnings.warn(
            f"Task column '{col}': removed surrounding whitespace from {int(changed.sum())} "
            f"value(s) ({examples})"
            + (
                f"; {merged} padded spelling(s) joined the task of the same name."
                if merged
                else "."
            ),
            MetamedWarning,
            stacklevel=3,
        )
    return stripped


def _one_two_positive(frame: pd.DataFrame, col: str) -> int | None:
    """2 when the outcome is coded 1/2 (R's survival ``status``), said in a warning."""
    y = frame[col]
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y) or y.isna().any():
        return None  # text, booleans and missing outcomes have their own rules
    if tuple(np.unique(y.to_numpy(dtype=float))) != _ONE_TWO_CODING:
        return None
    warnings.warn(
        f"Outcome '{col}' is coded 1/2 (as R's survival status); 2 is taken as the positive "
        "class (coded 1) and 1 as 0. Pass --positive-label 1 (positive_label=1) to reverse, "
        "or --outcome-type numeric (outcome_type='numeric') to predict the numbers.",
        MetamedWarning,
        stacklevel=3,
    )
    return 2


def _binarise(series: pd.Series, col: str, positive_label: object) -> pd.Series:
    if series.isna().any():
        raise MetamedValueError(
            f"Outcome '{col}' is missing in {int(series.isna().sum())} row(s); drop those "
            "patients before coding the outcome."
        )
    keys = series.map(_category_key)
    levels = sorted(pd.unique(keys))
    positive = _category_key(positive_label)
    if len(levels) != 2 or positive not in levels:
        raise MetamedValueError(
            f"positive_label={positive_label!r} needs an outcome with exactly two values, one "
            f"of them the label; '{col}' holds {len(levels)} values: {levels[:6]}. Recode "
            "the outcome yourself."
        )
    return (keys == positive).astype(np.int64)
