"""JSON patient rows checked and turned into model inputs in one pass, without pandas.

The service's answer to one patient used to spend most of its time building two small
tables: one to check the rows (:meth:`InputSchema.check_records`) and one inside the
preprocessor (:meth:`Preprocessor.transform`).  :class:`RowEncoder` does the same for
JSON records with plain Python and a few numpy operations on the whole batch.

It is a fast path, not a second set of rules: it accepts only rows it can prove the
pandas path accepts, and encodes them exactly as that path does (the same float64
operations, then float32).  Anything else, whether a bad row or merely an unusual one
(an integer beyond 2**53, a code-set column), goes down the pandas path, which gives
the answer or the one error message it always gave.  ``tests/serve/test_encoding.py``
compares the two on many seeded random and malformed rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.cohort import MAX_ABS_VALUE
from metamed.data.preprocess import MISSING_LEVEL, Preprocessor
from metamed.serve.validation import CATEGORICAL, NUMERIC_COLUMN, InputSchema

__all__ = ["RowEncoder"]

#: Integers up to this size are exact as float64, so pandas and numpy agree on them.
_EXACT_INT = 2**53


class _Unusual(Exception):
    """The rows are not ones the fast path vouches for: take the pandas path."""


def _number(value: Any) -> float:
    """A JSON number as float64; None is missing (NaN); anything else is unusual."""
    kind = type(value)
    if kind is float:
        if value != value or value in (math.inf, -math.inf):  # JSON NaN / Infinity
            raise _Unusual
        return value
    if kind is int and -_EXACT_INT <= value <= _EXACT_INT:
        return float(value)
    if value is None:
        return math.nan
    raise _Unusual


def _category(value: Any) -> str:
    """The preprocessor's key of a categorical cell (``_category_key``), for plain values."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return MISSING_LEVEL
    if kind is int and -_EXACT_INT <= value <= _EXACT_INT:
        return str(value)
    if kind is float and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    raise _Unusual


class RowEncoder:
    """The model inputs of JSON patient records, checked against ``schema``.

    Parameters
    ----------
    schema : InputSchema
        The model's input rules (from its manifest).
    preprocessor : Preprocessor
        The model's fitted preprocessor, which encodes the rows.
    """

    def __init__(self, schema: InputSchema, preprocessor: Preprocessor) -> None:
        self.schema = schema
        self._pre = pre = preprocessor
        self._keys = frozenset(schema.names)
        rules = schema.by_name
        features = pre.schema
        self.usable = set(features.features) == set(self._keys) and all(
            rules[c].type == NUMERIC_COLUMN for c in features.numeric
        ) and all(rules[c].type == CATEGORICAL for c in features.categorical)
        if not self.usable:
            return
        self._numeric = list(features.numeric)
        self._categorical = list(features.categorical)
        self._codesets = list(features.codesets)
        allowed = [rules[c].allowed or (-math.inf, math.inf) for c in self._numeric]
        self._low = np.array([a[0] for a in allowed], dtype=np.float64)
        self._high = np.array([a[1] for a in allowed], dtype=np.float64)
        binary = set(pre.binary_)
        self._medians = np.array([pre.medians_[c] for c in self._numeric], dtype=np.float64)
        self._scaled = [j for j, c in enumerate(self._numeric) if c not in binary]
        self._means = np.array([pre.means_[self._numeric[j]] for j in self._scaled])
        self._stds = np.array([pre.stds_[self._numeric[j]] for j in self._scaled])
        self._indicators = [self._numeric.index(c) for c in pre.indicators_]
        self._known = {c: frozenset(rules[c].categories) for c in self._categorical}
        self._levels = {
            c: {level: i for i, level in enumerate(pre.categories_[c])}
            for c in self._categorical
        }

    def encode(self, records: Sequence[Any]) -> np.ndarray:
        """The float32 input matrix of ``records``, as the preprocessor's ``transform`` of
        the checked table gives it; bad rows raise the pandas path's own error."""
        if self.usable:
            try:
                return self._fast(records)
            except _Unusual:
                pass
        return self._pre.transform(self.schema.check_records(records))

    def _fast(self, records: Sequence[Any]) -> np.ndarray:
        if type(records) is not list or not 0 < len(records) <= self.schema.max_rows:
            raise _Unusual
        keys = self._keys
        for record in records:
            if type(record) is not dict or record.keys() != keys:
                raise _Unusual
        n = len(records)
        blocks: list[np.ndarray] = []
        if self._numeric:
            missing = np.array(
                [[r[c] is None for c in self._numeric] for r in records], dtype=bool
            )
            values = np.array(
                [[_number(r[c]) for c in self._numeric] for r in records], dtype=np.float64
            )
            present = ~missing
            if np.any(present & ((values < self._low) | (values > self._high))) or np.any(
                present & (np.abs(values) > MAX_ABS_VALUE)
            ):
                raise _Unusual  # out of the accepted range: the pandas path names it
            numeric = np.where(missing, self._medians, values)
            if self._scaled:
                scaled = (numeric[:, self._scaled] - self._means) / self._stds
                if np.any(np.abs(scaled) > MAX_ABS_VALUE):
                    raise _Unusual
                numeric[:, self._scaled] = scaled
            blocks.append(numeric)
            blocks.append(missing[:, self._indicators].astype(np.float64))
        for col in self._categorical:
            known, levels = self._known[col], self._levels[col]
            other = len(levels)
            idx = np.empty(n, dtype=np.int64)
            for i, record in enumerate(records):
                key = _category(record[col])
                if record[col] is not None and key not in known:
                    raise _Unusual  # an unknown category: the pandas path names it
                idx[i] = levels.get(key, other)
            onehot = np.zeros((n, other + 1), dtype=np.float32)
            onehot[np.arange(n), idx] = 1.0
            blocks.append(onehot)
        for col in self._codesets:
            cells = [r[col] for r in records]
            if any(c is not None and type(c) is not str for c in cells):
                raise _Unusual
            inverse, rows, _ = self._pre._code_rows(col, pd.Series(cells, dtype=object))
            blocks.append(rows[inverse])
        return np.concatenate([b.astype(np.float32, copy=False) for b in blocks], axis=1)
