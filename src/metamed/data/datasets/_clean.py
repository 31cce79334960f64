"""Small cleaning steps the dataset loaders share (private: not a dataset module).

Each loader's docstring says *which* values it changes and why; these helpers only make
the change the same way everywhere and refuse a file that is not the one the loader was
written for, with one line that names the file and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.registry import DataFile, fetch_command, read_files
from metamed.errors import MetamedValueError


def read_csv(path: Path, dataset: str, columns: Iterable[str], **options: Any) -> pd.DataFrame:
    """Read one file of ``dataset``; refuse it when one of ``columns`` is absent.

    The file has already passed its sha256 check when a loader calls this through
    ``load_dataset``, so a missing column means the loader is called on a different
    copy (a fixture, a hand-made extract): the message says which column and file.
    ``options`` go to :func:`pandas.read_csv` (e.g. which texts mean missing).
    """
    try:
        frame = pd.read_csv(path, low_memory=False, **options)
    except (ValueError, OSError) as exc:  # pandas' ParserError derives from ValueError
        raise MetamedValueError(
            f"Dataset '{dataset}': could not read {path.name} as CSV ({exc}). Re-fetch it: "
            f"{fetch_command(dataset)}"
        ) from exc
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise MetamedValueError(
            f"Dataset '{dataset}': {path.name} lacks the column(s) {absent[:5]} the loader "
            f"reads; it is not the published file. Re-fetch it: {fetch_command(dataset)}"
        )
    return frame


def sentinel_to_missing(
    frame: pd.DataFrame, columns: Sequence[str], sentinel: float
) -> pd.DataFrame:
    """A copy of ``frame`` with ``sentinel`` (a code for "not measured") as NaN in ``columns``."""
    values = frame[list(columns)].astype(float)
    cleaned = values.mask(values == sentinel)
    others = frame.drop(columns=list(columns))
    return pd.concat([others, cleaned], axis=1)[list(frame.columns)]


def outside_to_missing(series: pd.Series, low: float, high: float) -> pd.Series:
    """``series`` as float with values outside ``[low, high]`` set to NaN."""
    values = series.astype(float)
    return values.where(values.between(low, high) | values.isna())


def recode(
    series: pd.Series,
    codes: Mapping[str, float],
    missing: Iterable[str] = (),
    *,
    where: str,
) -> pd.Series:
    """Map text codes to numbers (surrounding spaces ignored); ``missing`` codes become NaN.

    A code outside ``codes`` and ``missing`` is refused rather than guessed: the
    dataset's documentation named every code when the loader was written.

    Parameters
    ----------
    series : Series
        Text cells (NaN stays NaN).
    codes : mapping
        Code -> value, e.g. ``{"Yes": 1, "No": 0}``.
    missing : iterable of str
        Codes that mean "not recorded" (after stripping; ``""`` is a blank cell).
    where : str
        How the error names the column, e.g. ``"opt.csv.gz, column 'Diabetes'"``.
    """
    text = series.astype("string").str.strip()
    missing = set(missing)
    unknown = sorted(set(text.dropna().unique()) - set(codes) - missing)
    if unknown:
        raise MetamedValueError(
            f"{where}: unexpected code(s) {unknown[:5]}; expected one of "
            f"{sorted(codes) + sorted(missing)}."
        )
    # A mapping, not a function: pandas looks each value up without a Python call per row.
    lookup = {
        **{code: float(value) for code, value in codes.items()},
        **dict.fromkeys(missing, np.nan),
    }
    return text.map(lookup).astype(float)


def numbers(series: pd.Series, missing: Iterable[str] = (), *, where: str) -> pd.Series:
    """Text cells as floats; ``missing`` codes (after stripping) become NaN.

    A cell that is neither a number nor a missing code is refused, naming it.
    """
    text = series.astype("string").str.strip()
    text = text.mask(text.isin(list(missing)))
    values = pd.to_numeric(text, errors="coerce")
    bad = text[values.isna() & text.notna()]
    if len(bad):
        raise MetamedValueError(
            f"{where}: {bad.iloc[0]!r} is not a number (missing is written "
            f"{sorted(missing) or 'as an empty cell'})."
        )
    return values.astype(float)


def files_named(package: str, resource: str, *names: str) -> tuple[DataFile, ...]:
    """The entries ``names`` of a shared file list (datasets sharing one folder)."""
    files = tuple(f for f in read_files(package, resource) if f.name in names)
    if len(files) != len(names):
        raise MetamedValueError(f"{package}/{resource} does not list all of {names}.")
    return files


def in_task_order(frame: pd.DataFrame, task_col: str, order: Sequence[str]) -> pd.DataFrame:
    """Rows of ``frame`` grouped by task in the dataset's own ``order``, file order within."""
    position = frame[task_col].map({task: i for i, task in enumerate(order)})
    return frame.iloc[np.argsort(position.to_numpy(), kind="stable")].reset_index(drop=True)
