"""A small SVG plotting surface for the report's line, band, scatter and bar panels.

The report's figures are a few dozen lines, bands and markers each; drawing them as
SVG text takes milliseconds, where matplotlib's layout and rasterising took most of a
report's rendering time (several seconds for a ten-method benchmark).  SVG also stays
sharp at any zoom and keeps its text searchable.  Only what the report draws is here:
linear or log axes with ticks and grid lines, polylines, filled bands, circles, bars,
text, and a grid of panels on one canvas.

Coordinates: a :class:`Panel` maps data values to pixels of its plotting area; the
:class:`Canvas` places panels and free text and writes the ``<svg>`` document.  Every
piece of text is XML-escaped, so method names cannot break the markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = ["Canvas", "Panel", "nice_ticks", "tick_label"]

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
GRID = "#e6e6e6"
AXIS = "#444444"
MUTED = "#5b6475"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten)
    covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_label(value: float) -> str:
    """A tick value as short text: ``5``, ``0.25``, ``1e+03``."""
    return f"{value:g}"


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _text_width(text: str, size: float) -> float:
    """Rough rendered width of ``text`` in pixels (for laying out legends and margins)."""
    return 0.58 * size * len(text)


@dataclass
class Panel:
    """One plotting area at ``(left, top)``, ``width`` x ``height`` pixels, on a canvas.

    ``xlim``/``ylim`` are the data ranges of the edges; ``xlog`` spaces x on a log scale.
    Drawing methods take data coordinates and skip non-finite points (a line breaks there).
    """

    left: float
    top: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xlog: bool = False
    parts: list[str] = field(default_factory=list)

    # -- coordinates ------------------------------------------------------------------
    def _x_unit(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.xlim
        if self.xlog:
            x, lo, hi = np.log(x), math.log(lo), math.log(hi)
        return (x - lo) / ((hi - lo) or 1.0)

    def px(self, x: Iterable[float] | float) -> np.ndarray:
        """Pixel x of data x."""
        values = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.left + self._x_unit(values) * self.width

    def py(self, y: Iterable[float] | float) -> np.ndarray:
        """Pixel y of data y (SVG's y grows downwards)."""
        lo, hi = self.ylim
        values = np.asarray(y, dtype=float)
        return self.top + self.height - (values - lo) / ((hi - lo) or 1.0) * self.height

    # -- marks -------------------------------------------------------------------------
    def line(
        self,
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        color: str,
        width: float = 1.5,
        dash: str | None = None,
    ) -> None:
        """A polyline through the finite points, broken where a point is not finite."""
        xs, ys = self.px(x), self.py(y)
        finite = np.isfinite(xs) & np.isfinite(ys)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        for run in _runs(finite):
            self.parts.append(
                f'<polyline points="{" ".join(_points(xs[run], ys[run]))}" fill="none" stroke="{color}" '
                f'stroke-width="{width}"{dashed} stroke-linejoin="round"/>'
            )

    def band(
        self,
        x: Sequence[float] | np.ndarray,
        lo: Sequence[float] | np.ndarray,
        hi: Sequence[float] | np.ndarray,
        color: str,
        opacity: float,
    ) -> None:
        """A filled band between ``lo`` and ``hi`` over the points where both are finite."""
        xs, ylo, yhi = self.px(x), self.py(lo), self.py(hi)
        finite = np.isfinite(xs) & np.isfinite(ylo) & np.isfinite(yhi)
        for run in _runs(finite):
            upper, lower = _points(xs[run], yhi[run]), _points(xs[run], ylo[run])
            self.parts.append(
                f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{color}" '
                f'fill-opacity="{opacity:.3f}" stroke="none"/>'
            )

    def circles(
        self,
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        color: str,
        radius: float | Sequence[float] | np.ndarray = 2.5,
        opacity: float = 1.0,
        edge: str | None = None,
    ) -> None:
        """A circle per finite point; ``radius`` may vary per point."""
        xs, ys = self.px(x), self.py(y)
        radii = np.broadcast_to(np.asarray(radius, dtype=float), xs.shape)
        keep = np.isfinite(xs) & np.isfinite(ys)
        stroke = f' stroke="{edge}" stroke-width="0.8"' if edge else ""
        fade = f' fill-opacity="{opacity:.2f}"' if opacity < 1 else ""
        circles = "".join(
            f'<circle cx="{_fmt(a)}" cy="{_fmt(b)}" r="{r:.1f}"/>'
            for a, b, r in zip(xs[keep], ys[keep], radii[keep], strict=True)
        )
        if circles:
            self.parts.append(f'<g fill="{color}"{fade}{stroke}>{circles}</g>')

    def bars(
        self, left: np.ndarray, heights: np.ndarray, width: float, color: str
    ) -> None:
        """Bars from y = ``ylim[0]`` up to ``heights``, each ``width`` wide in data units."""
        x0, x1 = self.px(left), self.px(np.asarray(left) + width)
        top, base = self.py(heights), self.py(self.ylim[0])
        rects = "".join(
            f'<rect x="{_fmt(a)}" y="{_fmt(t)}" width="{_fmt(b - a)}" height="{_fmt(base - t)}"/>'
            for a, b, t in zip(x0, x1, top, strict=True)
            if base - t > 0
        )
        if rects:
            self.parts.append(f'<g fill="{color}">{rects}</g>')

    def hline(self, y: float, color: str = "#888888", dash: str = "2,2") -> None:
        """A horizontal reference line across the panel, when ``y`` is inside it."""
        lo, hi = self.ylim
        if lo <= y <= hi:
            level = float(self.py(y))
            self.parts.append(
                f'<line x1="{_fmt(self.left)}" y1="{_fmt(level)}" '
                f'x2="{_fmt(self.left + self.width)}" y2="{_fmt(level)}" stroke="{color}" '
                f'stroke-width="0.8" stroke-dasharray="{dash}"/>'
            )

    def message(self, text: str) -> None:
        """Centred text in the panel (for example "no finite values")."""
        self.parts.append(
            _text(self.left + self.width / 2, self.top + self.height / 2, text, 11, anchor="middle")
        )

    # -- frame -------------------------------------------------------------------------
    def axes(
        self,
        xticks: Sequence[float],
        yticks: Sequence[float],
        *,
        xlabel: str = "",
        ylabel: str = "",
        xtick_labels: bool = True,
        ytick_labels: bool = True,
        grid: bool = True,
        size: float = 10,
    ) -> None:
        """Left and bottom axis lines, ticks with labels, optional grid lines and axis labels.

        Drawn first (under the data): call it before the marks.
        """
        bottom, right = self.top + self.height, self.left + self.width
        out: list[str] = []
        for value in xticks:
            x = float(self.px(value))
            if grid:
                out.append(_vline(x, self.top, bottom, GRID))
            out.append(_vline(x, bottom, bottom + 4, AXIS))
            if xtick_labels:
                out.append(_text(x, bottom + 6 + size, tick_label(value), size, anchor="middle"))
        for value in yticks:
            y = float(self.py(value))
            if grid:
                out.append(_hline(self.left, right, y, GRID))
            out.append(_hline(self.left - 4, self.left, y, AXIS))
            if ytick_labels:
                out.append(_text(self.left - 6, y + size * 0.35, tick_label(value), size, anchor="end"))
        out.append(_hline(self.left, right, bottom, AXIS))
        out.append(_vline(self.left, self.top, bottom, AXIS))
        if xlabel:
            out.append(_text(self.left + self.width / 2, bottom + 2 * size + 12, xlabel, size, anchor="middle"))
        if ylabel:
            tick_width = max((_text_width(tick_label(v), size) for v in yticks), default=0.0)
            x = self.left - tick_width - 12 - size * 0.4
            y = self.top + self.height / 2
            out.append(
                f'<text x="{_fmt(x)}" y="{_fmt(y)}" font-size="{size}" text-anchor="middle" '
                f'transform="rotate(-90 {_fmt(x)} {_fmt(y)})">{escape(ylabel)}</text>'
            )
        self.parts[:0] = out

    def title(self, lines: Sequence[str], color: str = "#222222", bold: bool = False, size: float = 11) -> None:
        """One or more title lines centred above the panel."""
        weight = ' font-weight="bold"' if bold else ""
        for i, line in enumerate(lines):
            y = self.top - 8 - (len(lines) - 1 - i) * (size + 3)
            self.parts.append(
                _text(self.left + self.width / 2, y, line, size, anchor="middle", color=color, extra=weight)
            )


@dataclass
class Canvas:
    """An SVG document of ``width`` x ``height`` pixels holding panels and free text."""

    width: float
    height: float
    panels: list[Panel] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def panel(
        self,
        left: float,
        top: float,
        width: float,
        height: float,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        xlog: bool = False,
    ) -> Panel:
        """A new panel at ``(left, top)`` (pixels) showing ``xlim`` x ``ylim``."""
        panel = Panel(left, top, width, height, xlim, ylim, xlog)
        self.panels.append(panel)
        return panel

    def text(
        self, x: float, y: float, text: str, size: float = 11, anchor: str = "start", color: str = "#222222"
    ) -> None:
        self.parts.append(_text(x, y, text, size, anchor=anchor, color=color))

    def legend(
        self, x: float, y: float, entries: Sequence[tuple[str, str, str | None]], size: float = 10
    ) -> None:
        """A column of ``(label, colour, dash)`` entries starting at ``(x, y)``."""
        for i, (label, color, dash) in enumerate(entries):
            row = y + i * (size + 6)
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<line x1="{_fmt(x)}" y1="{_fmt(row)}" x2="{_fmt(x + 22)}" y2="{_fmt(row)}" '
                f'stroke="{color}" stroke-width="2"{dashed}/>'
            )
            self.parts.append(_text(x + 28, row + size * 0.35, label, size))

    def to_svg(self, description: str = "") -> str:
        """The SVG document, with ``description`` as its accessible ``<title>``."""
        body = "".join(part for p in self.panels for part in p.parts) + "".join(self.parts)
        title = f"<title>{escape(description)}</title>" if description else ""
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_fmt(self.width)}" '
            f'height="{_fmt(self.height)}" viewBox="0 0 {_fmt(self.width)} {_fmt(self.height)}" '
            f"font-family={quoteattr(FONT)} fill=\"#222222\">{title}"
            f'<rect width="100%" height="100%" fill="white"/>{body}</svg>'
        )


def _points(xs: np.ndarray, ys: np.ndarray) -> list[str]:
    """``x,y`` pairs of pixel coordinates, as SVG's ``points`` attribute lists them."""
    return [f"{_fmt(a)},{_fmt(b)}" for a, b in zip(xs, ys, strict=True)]


def _runs(mask: np.ndarray) -> list[slice]:
    """The maximal runs of ``True`` in ``mask``, as slices."""
    runs, start = [], None
    for i, flag in enumerate(mask):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append(slice(start, i))
            start = None
    if start is not None:
        runs.append(slice(start, len(mask)))
    return runs


def _text(
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    anchor: str = "start",
    color: str | None = None,
    extra: str = "",
) -> str:
    fill = f' fill="{color}"' if color else ""
    return (
        f'<text x="{_fmt(x)}" y="{_fmt(y)}" font-size="{size}" text-anchor="{anchor}"{fill}{extra}>'
        f"{escape(text)}</text>"
    )


def _vline(x: float, y0: float, y1: float, color: str) -> str:
    return f'<line x1="{_fmt(x)}" y1="{_fmt(y0)}" x2="{_fmt(x)}" y2="{_fmt(y1)}" stroke="{color}" stroke-width="0.8"/>'


def _hline(x0: float, x1: float, y: float, color: str) -> str:
    return f'<line x1="{_fmt(x0)}" y1="{_fmt(y)}" x2="{_fmt(x1)}" y2="{_fmt(y)}" stroke="{color}" stroke-width="0.8"/>'
