"""The report engine: Jinja2 templates, autoescaped, shipped as package data.

Every HTML page metamed writes (the benchmark report, the dosing report) is a template in
``metamed/report/templates/`` filled from plain values: strings, numbers already
formatted, :class:`Table` and :class:`Image` objects.  Autoescaping is on for every
template, so a dataset, method, task or patient name holding ``<``, ``&`` or quotes is
shown as text and never runs as markup; ``StrictUndefined`` turns a misspelt field in a
template into an error instead of an empty string.  The pages are self-contained: the
stylesheet is inlined from ``report.css`` and figures are base64 PNG ``data:`` URIs.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import jinja2
import numpy as np
import pandas as pd

__all__ = ["Cell", "Table", "Image", "format_number", "frame_table", "render"]


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, an optional interval shown beside it, and emphasis."""

    text: str
    ci: str = ""
    best: bool = False


@dataclass(frozen=True)
class Table:
    """A table for the ``table`` macro; the first ``left_cols`` columns are left-aligned."""

    header: Sequence[str]
    rows: Sequence[Sequence[Cell | str]]
    left_cols: int = 1


@dataclass(frozen=True)
class Image:
    """A figure inlined as a ``data:`` URI: PNG bytes, or an SVG document.

    An SVG goes in an ``<img>`` like a PNG, never into the page's own markup, so nothing
    in it can run as part of the page.
    """

    data: bytes | str = field(repr=False)
    alt: str

    @property
    def uri(self) -> str:
        if isinstance(self.data, str):
            return "data:image/svg+xml;base64," + base64.b64encode(self.data.encode("utf-8")).decode("ascii")
        return "data:image/png;base64," + base64.b64encode(self.data).decode("ascii")


def format_number(x: object, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; ``n/a`` for NaN/inf; text left as it is."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def frame_table(frame: pd.DataFrame, digits: int = 2, na_rep: str = "-") -> Table:
    """A DataFrame as a :class:`Table`: floats to ``digits`` decimals, text columns left."""
    left = 0
    for dtype in frame.dtypes:
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            break
        left += 1

    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return na_rep if not math.isfinite(value) else f"{value:.{digits}f}"
        return str(value)

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return Table([str(c) for c in frame.columns], rows, left_cols=left)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("metamed.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    return env


def render(template: str, **context: object) -> str:
    """Render the packaged template ``template`` (e.g. ``"benchmark.html"``) with ``context``."""
    return _environment().get_template(template).render(**context)
