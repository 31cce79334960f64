"""Preprocessing fitted on meta-train tasks: imputation, scaling, one-hot, multi-hot.

:class:`Preprocessor` turns the feature columns of a cohort table into one float32
matrix.  It is fitted on the rows of the meta-train tasks only (the caller passes
exactly those rows) and reads only the schema's feature columns, never the outcome,
group or reference columns, so nothing about held-out tasks, labels or clinical scores
can leak into the inputs.

The output width is fixed at fit time: a value first seen at transform time (a new
category, a missing cell in a column that was complete at fit, a new diagnosis code)
never adds a column.

Code sets (diagnosis or medication codes, ``;``-separated in one cell) are a feature
kind of their own: a multi-hot vector over a vocabulary learned at fit, optionally
after rolling each code up the ICD-9-CM hierarchy (its 3-character category, its
chapter; :mod:`metamed.data.icd9`).  The vocabulary is what the meta-train rows hold
often enough (``min_code_count``, ``max_codes``); every other code, too rare in training
or never seen there (a rare cohort's own diagnoses, typically), sets the column's one
``<unknown>`` bucket.  How many rows and distinct codes went to the bucket is counted
(:meth:`Preprocessor.count_unknown_codes`, ``unknown_codes_`` for the fit rows) so a
run can report how much of a held-out cohort its vocabulary did not cover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.cohort import CODESET_SEPARATOR, MAX_ABS_VALUE, Schema, check_numeric_range
from metamed.data.icd9 import icd9_category, icd9_chapter
from metamed.errors import (
    MetamedTypeError,
    MetamedValueError,
    NotFittedError,
    did_you_mean,
    unknown_name,
)

__all__ = [
    "Preprocessor",
    "outcome_array",
    "CODE_LEVELS",
    "MISSING_LEVEL",
    "OTHER_LEVEL",
    "UNKNOWN_CODE",
]

#: Category level given to missing cells of a categorical column.
MISSING_LEVEL = "<missing>"
#: Bucket for categories not seen at fit time (and for missing cells when no cell was
#: missing at fit time).
OTHER_LEVEL = "<other>"

#: Bucket of a code-set column for the codes outside its vocabulary: too rare in the fit
#: rows, beyond ``max_codes``, or first seen at transform time.
UNKNOWN_CODE = "<unknown>"

#: How a code becomes a vocabulary entry: as it is, or rolled up to its ICD-9-CM
#: category or chapter (``None``: the code has no such ancestor, i.e. is not ICD-9).
CODE_LEVELS: dict[str, Callable[[str], str | None]] = {
    "code": lambda code: code,
    "icd9_category": icd9_category,
    "icd9_chapter": icd9_chapter,
}

# Standard deviations below this are treated as zero (constant column): scaling such a
# column would only amplify rounding noise.
_MIN_STD = 1e-12


def _is_binary(seen: np.ndarray) -> bool:
    """Whether a numeric column's observed fit values are exactly the two values 0 and 1.

    Such a column is a flag and is left as 0/1, not standardised.  Standardising a flag
    of prevalence p maps its ones to (1 - p) / sqrt(p (1 - p)), about 1 / sqrt(p): a
    flag held by 0.07 % of patients (IWPC's rifampin) becomes an input of about 38, and a
    gradient step on a support set holding such a patient moves the first layer 38 times
    further than on any standardised column, which made fine-tuning and MAML's inner
    loop diverge.  Left as 0/1 a flag is bounded like the one-hot, code-set and
    missing-value indicator columns beside it (all 0/1 already), and keeps its meaning
    (1 = present).  A constant column (one value only) stays centred, as before.
    """
    if not len(seen):
        return False
    return bool(np.isin(seen, (0.0, 1.0)).all() and seen.min() != seen.max())


def _category_key(value: object) -> str:
    """Canonical text of one categorical cell, so that 1, 1.0 and "1" are one level."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING_LEVEL
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _distinct(series: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Distinct cells of ``series`` and, for each row, the position of its cell there.

    Per-cell work (a category's key, a code set's codes) then runs once per distinct
    value instead of once per row: diagnoses and levels repeat across patients.  The last
    distinct value is ``None``; it stands for every missing cell.
    """
    inverse, uniques = pd.factorize(series, use_na_sentinel=True)
    values = list(uniques)
    is_bool = [isinstance(v, (bool, np.bool_)) for v in values]
    if any(is_bool) and not all(is_bool):
        # True == 1 in Python, so factorize merges them, but they are two levels
        # ("True" and "1"): keep every cell apart.
        return np.arange(len(series)), [*series.tolist(), None]
    return np.where(inverse < 0, len(values), inverse), [*values, None]


def _split_codes(value: object) -> list[str]:
    """Codes of one code-set cell; a missing or empty cell holds no code."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return []
    codes = (c.strip() for c in str(value).split(CODESET_SEPARATOR))
    return sorted({c for c in codes if c})


class Preprocessor:
    """Fit-on-train feature preprocessing for one schema.

    Numeric columns: missing values are replaced by the fit median; a 0/1
    missing-value indicator column is added for each numeric column that had at least
    one missing value in the fit data; imputed values are standardised with the fit
    mean and standard deviation (a constant column is only centred).  Indicators are
    left as 0/1, and so is a numeric column whose fit values are exactly 0 and 1 (a
    flag such as sex or a drug taken): standardising a rare flag would blow its ones up
    to about 1 / sqrt(prevalence).

    Categorical columns: one-hot over the levels seen at fit (a missing cell is its own
    level ``"<missing>"`` when it occurs at fit), plus one ``"<other>"`` column that
    catches levels first seen at transform time.

    Code-set columns (``;``-separated codes): each code becomes one entry per level of
    ``code_levels`` (the code itself, its ICD-9-CM category, its chapter).  The
    vocabulary holds the entries found in at least ``min_code_count`` fit rows, at most
    the ``max_codes`` found in the most rows (ties broken alphabetically); the output is
    a multi-hot vector over it plus one ``"<unknown>"`` column, set in a row holding any
    code outside the vocabulary.  A missing or empty cell holds no code.

    Parameters
    ----------
    schema : Schema
        Column roles.  Only ``schema.features`` are read.
    max_codes : int, default 50
        Maximum number of vocabulary entries per code-set column.
    min_code_count : int, default 1
        Fewest fit rows an entry must appear in to get a column of its own; rarer ones go
        to the ``"<unknown>"`` bucket (a code seen in one patient mostly names that
        patient).
    code_levels : sequence of str or mapping, default ("code",)
        Levels of :data:`CODE_LEVELS` that each code contributes, for every code-set
        column, or a mapping from code-set column to its levels (columns not named keep
        ``("code",)``).  ``("icd9_category", "icd9_chapter")`` rolls ICD-9 codes up to
        their 3-character category and their chapter.

    Attributes
    ----------
    feature_names_ : list of str
        Name of each output column, e.g. ``"chol"``, ``"chol__missing"``, ``"cp=4"``,
        ``"dx:E11"``, ``"dx:<unknown>"``.
    medians_, means_, stds_ : dict
        Fit statistics of numeric columns (after imputation for means/stds).
    binary_ : list of str
        Numeric columns whose fit values are exactly 0 and 1: passed through unscaled
        (after imputation), not standardised.
    ranges_ : dict
        Smallest and largest value seen at fit of each numeric column, ``(min, max)``
        (``(nan, nan)`` for a column with no observed value): what the model was
        trained on, which deployment checks compare new patients with.
    categories_ : dict
        Levels (in output order, without ``"<other>"``) of each categorical column.
    codes_ : dict
        Vocabulary of each code-set column (sorted), without ``"<unknown>"``.
    code_levels_ : dict
        Levels of each code-set column.
    unknown_codes_ : dict
        For each code-set column, ``{"rows": r, "codes": c}``: the fit rows holding a code
        outside the vocabulary and the number of such distinct entries (see
        :meth:`count_unknown_codes`).
    unknown_bucket_ : bool
        Whether code-set columns have the ``"<unknown>"`` column; False only for a state
        saved by a metamed that had none (:meth:`from_dict` keeps its layout).
    """

    def __init__(
        self,
        schema: Schema,
        max_codes: int = 50,
        *,
        min_code_count: int = 1,
        code_levels: Iterable[str] | Mapping[str, Iterable[str]] = ("code",),
    ) -> None:
        self.schema = schema
        self.max_codes = max_codes
        self.min_code_count = min_code_count
        self.code_levels = code_levels

    # -- fitting -------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        """Learn imputation values, scaling, levels and code vocabularies from ``frame``.

        Parameters
        ----------
        frame : DataFrame
            Rows of the meta-train tasks only.  Columns other than the schema's
            feature columns are ignored (they may be absent).

        Returns
        -------
        Preprocessor
            ``self``.
        """
        if not isinstance(self.max_codes, (int, np.integer)) or self.max_codes < 0:
            raise MetamedValueError(f"max_codes must be an integer >= 0, got {self.max_codes!r}.")
        if not isinstance(self.min_code_count, (int, np.integer)) or self.min_code_count < 1:
            raise MetamedValueError(
                f"min_code_count must be an integer >= 1, got {self.min_code_count!r}."
            )
        features = self._select(frame)
        code_levels = self._resolve_code_levels()
        if len(frame) == 0:
            raise MetamedValueError(
                "Cannot fit the preprocessor on an empty table: pass the rows of the "
                "meta-train tasks (at least one row)."
            )
        self.medians_: dict[str, float] = {}
        self.means_: dict[str, float] = {}
        self.stds_: dict[str, float] = {}
        self.indicators_: list[str] = []
        self.ranges_: dict[str, tuple[float, float]] = {}
        self.binary_: list[str] = []
        for col in self.schema.numeric:
            values = self._numeric_values(features[col], col)
            missing = np.isnan(values)
            # A column with no observed value at fit carries no information; impute 0
            # so the output stays finite (its indicator column is then constant).
            median = float(np.median(values[~missing])) if (~missing).any() else 0.0
            seen = values[~missing]
            self.ranges_[col] = (
                (float(seen.min()), float(seen.max())) if len(seen) else (np.nan, np.nan)
            )
            filled = np.where(missing, median, values)
            std = float(filled.std())
            self.medians_[col] = median
            self.means_[col] = float(filled.mean())
            self.stds_[col] = std if std > _MIN_STD else 1.0
            if missing.any():
                self.indicators_.append(col)
            if _is_binary(seen):
                self.binary_.append(col)
        self.categories_: dict[str, list[str]] = {}
        for col in self.schema.categorical:
            inverse, cells = _distinct(features[col])
            levels = {_category_key(cells[j]) for j in np.unique(inverse)}
            # Missing first, then the others sorted: a fixed, data-order-free layout.
            ordered = sorted(levels - {MISSING_LEVEL})
            if MISSING_LEVEL in levels:
                ordered = [MISSING_LEVEL, *ordered]
            self.categories_[col] = ordered
        self.code_levels_: dict[str, tuple[str, ...]] = code_levels
        self.unknown_bucket_ = True
        self.codes_: dict[str, list[str]] = {}
        for col in self.schema.codesets:
            counts: Counter[str] = Counter()
            inverse, cells = _distinct(features[col])
            rows_per_cell = np.bincount(inverse, minlength=len(cells))
            for cell, n_rows in zip(cells, rows_per_cell, strict=True):
                if not n_rows:
                    continue
                entries, not_placed = self._entries(col, cell)
                if not_placed:
                    code, level = not_placed[0]
                    raise MetamedValueError(
                        f"Code-set column '{col}' holds the code {code!r}, which has no "
                        f"{level} (it is not an ICD-9-CM diagnosis code). Roll up only "
                        f"columns of ICD-9 codes: code_levels={{'{col}': ('code',)}} keeps "
                        "this column's codes as they are."
                    )
                counts.update(dict.fromkeys(entries, int(n_rows)))
            frequent = [kv for kv in counts.items() if kv[1] >= self.min_code_count]
            ranked = sorted(frequent, key=lambda kv: (-kv[1], kv[0]))
            self.codes_[col] = sorted(code for code, _ in ranked[: int(self.max_codes)])
        self.feature_names_: list[str] = self._names()
        self.unknown_codes_: dict[str, dict[str, int]] = self.count_unknown_codes(features)
        return self

    def _resolve_code_levels(self) -> dict[str, tuple[str, ...]]:
        """``code_levels`` checked and spelled out for every code-set column."""
        given = self.code_levels
        codesets = self.schema.codesets
        if isinstance(given, Mapping):
            for col in given:
                if col not in codesets:
                    raise MetamedValueError(
                        f"code_levels names '{col}', which is not a code-set column of the "
                        f"schema.{did_you_mean(str(col), codesets)} Code-set columns: "
                        f"{', '.join(codesets) or 'none'}."
                    )
            per_column = {col: given.get(col, ("code",)) for col in codesets}
        else:
            per_column = {col: given for col in codesets}
        resolved: dict[str, tuple[str, ...]] = {}
        for col, levels in per_column.items():
            levels = (levels,) if isinstance(levels, str) else tuple(levels)
            if not levels:
                raise MetamedValueError(
                    f"code_levels for '{col}' is empty; give at least one of "
                    f"{', '.join(CODE_LEVELS)}."
                )
            for level in levels:
                if level not in CODE_LEVELS:
                    raise unknown_name("code level", str(level), CODE_LEVELS)
            resolved[col] = tuple(dict.fromkeys(levels))
        return resolved

    def _entries(self, col: str, cell: object) -> tuple[set[str], list[tuple[str, str]]]:
        """Vocabulary entries of one cell, and the (code, level) pairs that have none."""
        entries: set[str] = set()
        not_placed: list[tuple[str, str]] = []
        for code in _split_codes(cell):
            for level in self.code_levels_[col]:
                entry = CODE_LEVELS[level](code)
                if entry is None:
                    not_placed.append((code, level))
                else:
                    entries.add(entry)
        return entries, not_placed

    def _code_rows(
        self, col: str, cells: pd.Series
    ) -> tuple[np.ndarray, np.ndarray, list[set[str]]]:
        """Code-set encoding of each distinct cell: ``(inverse, rows, outside)``.

        ``rows[inverse]`` is the multi-hot block of ``cells`` (vocabulary, then the
        bucket) and ``outside[j]`` the codes of distinct cell ``j`` that are not in the
        vocabulary.  Computed once per distinct cell: the same diagnoses recur.
        """
        position = {code: i for i, code in enumerate(self.codes_[col])}
        bucket = len(position)
        inverse, values = _distinct(cells)
        rows = np.zeros((len(values), bucket + int(self.unknown_bucket_)), dtype=np.float32)
        outside: list[set[str]] = []
        for j, cell in enumerate(values):
            entries, not_placed = self._entries(col, cell)
            rows[j, [position[e] for e in entries if e in position]] = 1.0
            outside.append({e for e in entries if e not in position})
            outside[j].update(code for code, _ in not_placed)
            if self.unknown_bucket_ and outside[j]:
                rows[j, bucket] = 1.0
        return inverse, rows, outside

    def count_unknown_codes(self, frame: pd.DataFrame) -> dict[str, dict[str, int]]:
        """How much of ``frame``'s codes the fitted vocabularies do not cover.

        Parameters
        ----------
        frame : DataFrame
            Rows holding the schema's feature columns (e.g. a held-out task).

        Returns
        -------
        dict
            Code-set column -> ``{"rows": r, "codes": c}``: ``r`` rows hold at least one
            code that goes to the ``"<unknown>"`` bucket, and ``c`` distinct such entries
            (codes or their rolled-up categories and chapters) occur.
        """
        self._check_fitted()
        features = self._select(frame)
        report: dict[str, dict[str, int]] = {}
        for col in self.schema.codesets:
            inverse, _, outside = self._code_rows(col, features[col])
            has_unknown = np.array([bool(codes) for codes in outside])
            unknown = set().union(*(outside[j] for j in np.unique(inverse)))
            report[col] = {"rows": int(has_unknown[inverse].sum()), "codes": len(unknown)}
        return report

    def _names(self) -> list[str]:
        names = list(self.schema.numeric)
        names += [f"{col}__missing" for col in self.indicators_]
        for col in self.schema.categorical:
            names += [f"{col}={level}" for level in self.categories_[col]]
            names.append(f"{col}={OTHER_LEVEL}")
        for col in self.schema.codesets:
            names += [f"{col}:{code}" for code in self.codes_[col]]
            if self.unknown_bucket_:
                names.append(f"{col}:{UNKNOWN_CODE}")
        return names

    # -- transforming --------------------------------------------------------------
    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Model inputs for ``frame`` as a float32 array of shape ``(n, len(feature_names_))``.

        Missing numeric values take the fit median; unseen categories fall into the
        ``"<other>"`` column; codes outside the vocabulary set the ``"<unknown>"``
        column.  Outcome, group and reference columns are never read.
        """
        self._check_fitted()
        features = self._select(frame)
        n = len(features)
        blocks: list[np.ndarray] = []
        numeric = np.empty((n, len(self.schema.numeric)), dtype=np.float64)
        missing_cols: dict[str, np.ndarray] = {}
        binary = set(self.binary_)
        for j, col in enumerate(self.schema.numeric):
            values = self._numeric_values(features[col], col)
            missing = np.isnan(values)
            missing_cols[col] = missing
            filled = np.where(missing, self.medians_[col], values)
            if col in binary:
                numeric[:, j] = filled
                continue
            numeric[:, j] = (filled - self.means_[col]) / self.stds_[col]
            # In range in the table, a value can still land beyond float32 once scaled by
            # a tiny fit standard deviation; say so here, not as "NaN or inf" downstream.
            far = np.flatnonzero(np.abs(numeric[:, j]) > MAX_ABS_VALUE)
            if len(far):
                raise MetamedValueError(
                    f"Numeric column '{col}': value {values[far[0]]:.3g} (row {int(far[0])}) "
                    f"lies {numeric[far[0], j]:.3g} fit standard deviations from the fit mean, "
                    "too far to represent as float32; check its unit or entry."
                )
        blocks.append(numeric)
        blocks.append(
            np.stack([missing_cols[c] for c in self.indicators_], axis=1).astype(np.float64)
            if self.indicators_
            else np.empty((n, 0))
        )
        for col in self.schema.categorical:
            levels = self.categories_[col]
            position = {level: i for i, level in enumerate(levels)}
            other = len(levels)
            inverse, cells = _distinct(features[col])
            idx = np.array([position.get(_category_key(v), other) for v in cells])[inverse]
            onehot = np.zeros((n, len(levels) + 1), dtype=np.float32)
            onehot[np.arange(n), idx] = 1.0
            blocks.append(onehot)
        for col in self.schema.codesets:
            inverse, rows, _ = self._code_rows(col, features[col])
            blocks.append(rows[inverse])
        # Each block cast on its own: a float64 copy of the whole matrix never exists.
        return np.concatenate([b.astype(np.float32, copy=False) for b in blocks], axis=1)

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        """``fit(frame)`` then ``transform(frame)``."""
        return self.fit(frame).transform(frame)

    @property
    def n_features_out(self) -> int:
        """Width of the transformed matrix."""
        self._check_fitted()
        return len(self.feature_names_)

    # -- persistence ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fitted state (schema, parameters, statistics)."""
        self._check_fitted()
        return {
            "schema": self.schema.to_dict(),
            "max_codes": int(self.max_codes),
            "min_code_count": int(self.min_code_count),
            "code_levels": {col: list(levels) for col, levels in self.code_levels_.items()},
            "unknown_codes": self.unknown_codes_,
            "medians": self.medians_,
            "means": self.means_,
            "stds": self.stds_,
            "indicators": list(self.indicators_),
            "binary": list(self.binary_),
            "ranges": {k: list(v) for k, v in self.ranges_.items()},
            "categories": self.categories_,
            "codes": self.codes_,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output.

        A state without ``code_levels`` was saved before code-set columns had an
        ``"<unknown>"`` bucket: it is rebuilt with its own layout (no bucket), so the
        model saved with it gets the inputs it was trained on.
        """
        schema_state = dict(state["schema"])
        schema = Schema(
            outcome=schema_state["outcome"],
            numeric=tuple(schema_state.get("numeric", ())),
            categorical=tuple(schema_state.get("categorical", ())),
            codesets=tuple(schema_state.get("codesets", ())),
            group=tuple(schema_state.get("group", ())),
            reference=tuple(schema_state.get("reference", ())),
            outcome_type=schema_state.get("outcome_type", "binary"),
            event_col=schema_state.get("event_col"),
            units=dict(schema_state.get("units", {})),
        )
        legacy = "code_levels" not in state
        code_levels = {col: tuple(v) for col, v in state.get("code_levels", {}).items()}
        pre = cls(
            schema,
            max_codes=int(state["max_codes"]),
            min_code_count=int(state.get("min_code_count", 1)),
            code_levels=code_levels,
        )
        pre.medians_ = {k: float(v) for k, v in state["medians"].items()}
        pre.means_ = {k: float(v) for k, v in state["means"].items()}
        pre.stds_ = {k: float(v) for k, v in state["stds"].items()}
        pre.indicators_ = list(state["indicators"])
        # A state saved before flags were left unscaled has none: its model was trained
        # on standardised flags, and gets them.
        pre.binary_ = list(state.get("binary", []))
        # Artifacts saved before ranges were recorded have none: nothing to compare with.
        pre.ranges_ = {k: (float(v[0]), float(v[1])) for k, v in state.get("ranges", {}).items()}
        pre.categories_ = {k: list(v) for k, v in state["categories"].items()}
        pre.codes_ = {k: list(v) for k, v in state["codes"].items()}
        pre.code_levels_ = pre._resolve_code_levels()
        pre.unknown_bucket_ = not legacy
        pre.unknown_codes_ = {
            col: {k: int(v) for k, v in counts.items()}
            for col, counts in state.get("unknown_codes", {}).items()
        }
        pre.feature_names_ = pre._names()
        return pre

    # -- helpers -------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError(
                "This Preprocessor is not fitted yet; call fit(frame) with the rows of the "
                "meta-train tasks before transform."
            )

    def _select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``frame`` only (never outcome, group or reference columns)."""
        if not isinstance(self.schema, Schema):
            raise MetamedTypeError(
                f"Preprocessor: schema must be a metamed Schema (e.g. cohort.schema), got "
                f"{type(self.schema).__name__}."
            )
        if not isinstance(frame, pd.DataFrame):
            raise MetamedTypeError(
                f"Preprocessor: frame must be a pandas DataFrame holding the schema's feature "
                f"columns (e.g. taskset.frames(split.train)), got {type(frame).__name__}."
            )
        missing = [c for c in self.schema.features if c not in frame.columns]
        if missing:
            col = missing[0]
            raise MetamedValueError(
                f"Feature column '{col}' of the schema is not in the table."
                f"{did_you_mean(col, map(str, frame.columns))} "
                f"Missing columns: {', '.join(missing)}."
            )
        return frame.loc[:, list(self.schema.features)]

    @staticmethod
    def _numeric_values(series: pd.Series, col: str) -> np.ndarray:
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            # An all-missing object column is still acceptable: it is simply all NaN.
            if series.notna().any():
                bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
                example = bad.iloc[0] if len(bad) else series.dropna().iloc[0]
                raise MetamedTypeError(
                    f"Numeric column '{col}' holds non-numeric values (e.g. {example!r}). "
                    "Clean the values or declare the column categorical."
                )
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        check_numeric_range(values, f"Numeric column '{col}'")
        return values


def outcome_array(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """The outcome column of ``frame`` as float32, checked against the schema.

    The schema's outcome type checks the labels (:meth:`~metamed.outcomes.Outcome.check_labels`):
    binary outcomes hold only 0/1, and a missing outcome is an error, since a task row
    without a label cannot be scored.
    """
    col = schema.outcome
    if col not in frame.columns:
        raise MetamedValueError(
            f"Outcome column '{col}' is not in the table."
            f"{did_you_mean(col, map(str, frame.columns))}"
        )
    y = frame[col]
    if not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        raise MetamedTypeError(
            f"Outcome '{col}' must be numeric (0/1 for binary outcomes), got dtype {y.dtype}. "
            "Recode it before loading."
        )
    values = y.to_numpy(dtype=np.float64, na_value=np.nan)
    schema.outcome_type.check_labels(values, "The table", column=col)
    return values.astype(np.float32)
