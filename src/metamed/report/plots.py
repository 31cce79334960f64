"""Report figures, each returned as an SVG document ready to inline in HTML.

Figures are drawn with :mod:`metamed.report.svg`: a benchmark's report holds a handful
of figures of a few dozen lines, bands and markers each, which take milliseconds to
write as SVG text (matplotlib's layout and rasteriser took most of a report's rendering
time).  Nothing is global and nothing is left open, so the functions are safe from a
server thread.

Inputs are the tables of :mod:`metamed.evaluation`: a ``summary`` from
:func:`metamed.evaluation.statistics.summarise` (one dataset) and the ``predictions``
table (``method, dataset, task, k, draw, y_true, y_pred``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.metrics import ece, get_metric, primary_metric
from metamed.report.svg import MUTED, Canvas, Panel, nice_ticks

__all__ = [
    "method_colors",
    "kshot_curve_svg",
    "kshot_panels_svg",
    "kshot_small_multiples_svg",
    "reliability_svg",
    "predicted_vs_observed_svg",
]

# Colour-blind-friendly qualitative palette (Okabe & Ito 2008, "Color Universal Design"),
# followed by tab10 for methods beyond eight.
_OKABE_ITO = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
# Colours clearly apart from Okabe-Ito's, so that up to 16 methods stay distinguishable.
_EXTRA = ("#7B3294", "#8c564b", "#7f7f7f", "#17becf", "#bcbd22", "#d62728", "#2ca02c", "#ff9da7")

def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Assign each method a fixed colour, in the order given, so all figures agree.

    Parameters
    ----------
    methods : sequence of str
        Method names in display order.

    Returns
    -------
    dict of str to str
        Hex colour per method.
    """
    palette = _OKABE_ITO + _EXTRA
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def _check_summary(summary: pd.DataFrame) -> None:
    needed = {"method", "k", "metric", "mean", "ci_low", "ci_high"}
    missing = needed - set(summary.columns)
    if missing:
        raise MetamedValueError(
            f"summary is missing column(s) {sorted(missing)}; expected the output of "
            f"metamed.evaluation.statistics.summarise (received {list(summary.columns)})."
        )
    if "dataset" in summary.columns and summary["dataset"].nunique() > 1:
        raise MetamedValueError(
            f"summary holds several datasets {sorted(map(str, summary['dataset'].unique()))}; "
            f"plot one at a time (filter summary[summary.dataset == name])."
        )


#: ``(k, mean, ci_low, ci_high)`` of one method's K-shot curve, sorted by K.
Series = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# Margins around a K-shot panel, in pixels: tick labels and axis label on the left and
# at the bottom, a title line on top.
_LEFT, _BOTTOM, _TOP, _RIGHT = 62.0, 48.0, 30.0, 14.0
_BASELINE_GREY = "#9aa1ad"
_DASH = "5,3"


def _kshot_series(summary: pd.DataFrame, metric: str) -> tuple[np.ndarray, dict[str, Series]]:
    """The K values of ``metric`` and each method's curve."""
    rows = summary[summary["metric"] == metric]
    ks = np.sort(rows["k"].unique()).astype(float)
    series = {}
    for method, r in rows.groupby("method", sort=False, observed=True):
        r = r.sort_values("k")
        series[str(method)] = tuple(
            r[c].to_numpy(dtype=float) for c in ("k", "mean", "ci_low", "ci_high")
        )
    return ks, series


def _x_axis(ks: np.ndarray) -> tuple[tuple[float, float], bool]:
    """The x range of a K-shot panel and whether it is logarithmic.

    K grows geometrically in most protocols (1, 5, 10, 20, 50): a log axis then spaces
    the points evenly.
    """
    if not len(ks):
        return (0.0, 1.0), False
    lo, hi = float(ks.min()), float(ks.max())
    if lo > 0 and hi / lo >= 4:
        return (lo / 1.15, hi * 1.15), True
    pad = (hi - lo) * 0.05 or 1.0
    return (lo - pad, hi + pad), False


def _y_range(values: Sequence[np.ndarray], extra: Sequence[float] = ()) -> tuple[float, float]:
    """A padded range holding every finite value (and ``extra``, such as a target line)."""
    finite = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values] + [np.asarray(extra, dtype=float)])
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    pad = (hi - lo) * 0.06 or max(abs(lo) * 0.05, 0.05)
    return lo - pad, hi + pad


def _kshot_values(series: Mapping[str, Series], methods: Sequence[str], bands: bool) -> list[np.ndarray]:
    """The values a K-shot panel of ``methods`` shows (the means, and the bands' edges)."""
    values = []
    for method in methods:
        if method in series:
            _, mean, lo, hi = series[method]
            values += [mean, lo, hi] if bands else [mean]
    return values


def _kshot_panel(
    panel: Panel,
    ks: np.ndarray,
    metric: str,
    *,
    xtick_labels: bool = True,
    ytick_labels: bool = True,
    axis_labels: tuple[bool, bool] = (True, True),
    size: float = 10,
) -> None:
    """Axes of a K-shot panel: a tick at every K, round ticks on y, the metric's target."""
    scorer = get_metric(metric)
    lo, hi = panel.ylim
    panel.axes(
        list(ks),
        [t for t in nice_ticks(lo, hi) if lo <= t <= hi],
        xlabel="K (labelled support examples)" if axis_labels[0] else "",
        ylabel=scorer.axis_label if axis_labels[1] else "",
        xtick_labels=xtick_labels,
        ytick_labels=ytick_labels,
        size=size,
    )
    if scorer.target is not None:
        panel.hline(scorer.target)


def _draw_kshot(
    panel: Panel,
    series: Mapping[str, Series],
    methods: Sequence[str],
    colors: Mapping[str, str],
    baselines: Collection[str],
    *,
    bands: bool = True,
) -> bool:
    """Each method's mean curve with markers (dashed for baselines) and its CI band;
    whether anything finite was drawn."""
    plotted = False
    for method in methods:
        if method not in series:
            continue
        k, mean, lo, hi = series[method]
        if not np.isfinite(mean).any():
            continue
        if bands:
            # many overlapping bands turn into mud: fade them as methods are added
            panel.band(k, lo, hi, colors[method], opacity=min(0.15, 0.6 / len(methods)))
        width, radius = (1.8, 2.6) if bands else (1.0, 1.4)
        panel.line(k, mean, colors[method], width, _DASH if method in baselines else None)
        panel.circles(k, mean, colors[method], radius)
        plotted = True
    if not plotted:
        panel.message("no finite values")
    return plotted


def _legend_width(labels: Sequence[str], size: float = 10) -> float:
    return 36 + max((0.58 * size * len(label) for label in labels), default=0.0)


def _legend_entries(
    methods: Sequence[str], colors: Mapping[str, str], baselines: Collection[str]
) -> list[tuple[str, str, str | None]]:
    return [(m, colors[m], _DASH if m in baselines else None) for m in methods]


def _default_methods(summary: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    return list(methods) if methods is not None else sorted(map(str, summary["method"].unique()))


def kshot_curve_svg(
    summary: pd.DataFrame,
    metric: str,
    *,
    methods: Sequence[str] | None = None,
    baselines: Collection[str] = (),
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
    width: float = 700.0,
    height: float = 420.0,
) -> str:
    """Mean metric over held-out tasks versus K, one line per method, with CI bands.

    Parameters
    ----------
    summary : DataFrame
        Output of ``summarise`` for one dataset.
    metric : str
        Metric to plot.
    methods : sequence of str, optional
        Methods and their order; default all methods in ``summary``.
    baselines : collection of str, default ()
        Methods drawn dashed so baselines stand apart from meta-learners.
    colors : mapping, optional
        Colour per method (default :func:`method_colors`).
    title : str, optional
        Title above the plot.
    width, height : float
        Figure size in pixels.

    Returns
    -------
    str
        SVG document.
    """
    _check_summary(summary)
    methods = _default_methods(summary, methods)
    colors = dict(colors) if colors is not None else method_colors(methods)
    ks, series = _kshot_series(summary, metric)
    xlim, xlog = _x_axis(ks)
    target = get_metric(metric).target
    ylim = _y_range(_kshot_values(series, methods, True), () if target is None else (target,))
    legend = _legend_width(methods)
    canvas = Canvas(width, height)
    panel = canvas.panel(
        _LEFT, _TOP, width - _LEFT - legend - _RIGHT, height - _TOP - _BOTTOM, xlim, ylim, xlog
    )
    _kshot_panel(panel, ks, metric)
    if _draw_kshot(panel, series, methods, colors, set(baselines)):
        canvas.legend(width - legend, _TOP + 6, _legend_entries(methods, colors, set(baselines)))
    if title:
        panel.title([title])
    return canvas.to_svg(title or f"{metric} versus K")


def kshot_small_multiples_svg(
    summary: pd.DataFrame,
    metric: str,
    *,
    methods: Sequence[str],
    baselines: Collection[str],
    colors: Mapping[str, str] | None = None,
    cell: float = 260.0,
    max_cols: int = 3,
) -> str:
    """One small K-shot panel per method that is not a baseline, the baselines in each.

    Every panel shows its method with its CI band, and the baselines as thin grey dashed
    lines without bands, on one shared y axis: seven overlapping bands on one axes read as
    mud, while each method beside the same references reads at a glance.

    Returns
    -------
    str
        SVG document.
    """
    _check_summary(summary)
    colors = dict(colors) if colors is not None else method_colors(list(methods))
    shown = [m for m in methods if m not in baselines]
    refs = [m for m in methods if m in baselines]
    n = max(len(shown), 1)
    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    ks, series = _kshot_series(summary, metric)
    xlim, xlog = _x_axis(ks)
    target = get_metric(metric).target
    ylim = _y_range(
        _kshot_values(series, shown, True) + _kshot_values(series, refs, False),
        () if target is None else (target,),
    )
    header = 24.0 if refs else 6.0
    cell_h = cell * 0.85
    canvas = Canvas(cell * cols + 10, header + cell_h * rows)
    grey = {m: _BASELINE_GREY for m in refs}
    for index, method in enumerate(shown):
        row, col = divmod(index, cols)
        panel = canvas.panel(
            col * cell + _LEFT, header + row * cell_h + _TOP - 6,
            cell - _LEFT - _RIGHT, cell_h - _TOP - _BOTTOM + 6, xlim, ylim, xlog,
        )  # fmt: skip
        bottom_of_column = index + cols >= len(shown)
        _kshot_panel(
            panel, ks, metric,
            xtick_labels=bottom_of_column, ytick_labels=col == 0,
            axis_labels=(bottom_of_column, col == 0), size=9,
        )  # fmt: skip
        _draw_kshot(panel, series, [method], colors, set())
        if refs:
            _draw_kshot(panel, series, refs, grey, set(refs), bands=False)
        panel.title([method], color=colors[method], bold=True, size=10)
    if refs:
        canvas.text(canvas.width / 2, 15, f"dashed grey: baselines ({', '.join(refs)})", 10, "middle", MUTED)
    return canvas.to_svg(f"{metric} versus K, one panel per method")


def kshot_panels_svg(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    baselines: Collection[str] = (),
    colors: Mapping[str, str] | None = None,
    cell: float = 330.0,
) -> str:
    """Small K-shot panels side by side, one per metric, with one legend at the right.

    Parameters
    ----------
    summary : DataFrame
        Output of ``summarise`` for one dataset.
    metrics : sequence of str
        Metrics, one panel each; metrics absent from ``summary`` are skipped.
    methods, baselines, colors
        As in :func:`kshot_curve_svg`.
    cell : float, default 330
        Width of each panel, with its labels, in pixels.

    Returns
    -------
    str
        SVG document.
    """
    _check_summary(summary)
    present = set(summary["metric"].unique())
    metrics = [m for m in metrics if m in present]
    if not metrics:
        raise MetamedValueError(
            f"None of the requested metrics is in summary; present: {sorted(present)}."
        )
    methods = _default_methods(summary, methods)
    colors = dict(colors) if colors is not None else method_colors(methods)
    legend = _legend_width(methods)
    height = max(cell * 0.85, _TOP + 16 * len(methods))
    canvas = Canvas(cell * len(metrics) + legend, height)
    for i, metric in enumerate(metrics):
        ks, series = _kshot_series(summary, metric)
        xlim, xlog = _x_axis(ks)
        target = get_metric(metric).target
        ylim = _y_range(_kshot_values(series, methods, True), () if target is None else (target,))
        panel = canvas.panel(
            i * cell + _LEFT, _TOP, cell - _LEFT - _RIGHT, cell * 0.85 - _TOP - _BOTTOM, xlim, ylim, xlog
        )
        _kshot_panel(panel, ks, metric, size=9)
        _draw_kshot(panel, series, methods, colors, set(baselines))
        panel.title([get_metric(metric).label])
    canvas.legend(cell * len(metrics), _TOP + 6, _legend_entries(methods, colors, set(baselines)))
    return canvas.to_svg(", ".join(metrics) + " versus K")


def _check_predictions(predictions: pd.DataFrame) -> None:
    needed = {"method", "k", "y_true", "y_pred"}
    missing = needed - set(predictions.columns)
    if missing:
        raise MetamedValueError(
            f"predictions is missing column(s) {sorted(missing)}; expected columns "
            f"method, dataset, task, k, draw, y_true, y_pred (received {list(predictions.columns)})."
        )


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    # Balance the rows: 5 panels -> 2 x 3, not 4 + 1.
    rows = (n + max_cols - 1) // max_cols
    cols = (n + rows - 1) // rows
    return rows, cols


# A grid of per-method panels, in pixels: the figure title on top; in each cell room for
# a two-line panel title above and the tick and axis labels left of and below the panel.
_GRID_HEADER, _CELL_LEFT, _CELL_TOP, _CELL_BOTTOM, _CELL_RIGHT = 26.0, 58.0, 40.0, 46.0, 16.0


def _method_grid(
    predictions: pd.DataFrame, k: int, methods: Sequence[str] | None, colors: Mapping[str, str] | None, cell: float
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], dict[str, str], Canvas, list[tuple[float, float, float]]]:
    """Observed and predicted values per method at ``k``, and a grid of one cell per method.

    Returns the finite ``(y, pred)`` pairs per method (one pass over the table, however
    many methods), the methods (default: all with predictions at ``k``), the colour per
    method, the canvas and each method's square panel as ``(left, top, side)``.
    """
    _check_predictions(predictions)
    # only the three columns drawn: a copy of every column of a large run doubles its memory
    at_k = predictions.loc[predictions["k"] == k, ["method", "y_true", "y_pred"]]
    by_method = {
        str(m): _finite_outcomes(rows)
        for m, rows in at_k.groupby("method", sort=True, observed=True)
    }
    methods = list(methods) if methods is not None else sorted(by_method)
    colors = dict(colors) if colors is not None else method_colors(methods)
    n_rows, n_cols = _grid(max(len(methods), 1))
    side = cell - max(_CELL_LEFT + _CELL_RIGHT, _CELL_TOP + _CELL_BOTTOM)
    canvas = Canvas(cell * n_cols, _GRID_HEADER + cell * n_rows)
    places = [
        (col * cell + _CELL_LEFT, _GRID_HEADER + row * cell + _CELL_TOP, side)
        for row, col in (divmod(i, n_cols) for i in range(len(methods)))
    ]
    return by_method, methods, colors, canvas, places


_NO_OUTCOMES = (np.empty(0), np.empty(0))
_UNIT_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _finite_outcomes(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Observed and predicted values of ``rows``, keeping rows where both are finite."""
    y = rows["y_true"].to_numpy(dtype=float)
    pred = rows["y_pred"].to_numpy(dtype=float)
    keep = np.isfinite(y) & np.isfinite(pred)
    return y[keep], pred[keep]


def reliability_svg(
    predictions: pd.DataFrame,
    k: int,
    *,
    methods: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    n_bins: int = 10,
    cell: float = 290.0,
) -> str:
    """Reliability diagrams at support size ``k``, one panel per method, pooled over tasks.

    Each panel bins predicted probabilities into ``n_bins`` equal-width bins (as
    :func:`metamed.evaluation.metrics.ece`) and plots the observed event rate against
    the mean prediction; marker area grows with the bin's count, and a grey histogram
    along the bottom shows where predictions fall.  The pooled ECE is in the title.
    Pooling over tasks mixes sites with different prevalences, so a pooled curve can
    look calibrated while single sites are not; the per-task tables complement it.

    Parameters
    ----------
    predictions : DataFrame
        Query-set predictions (``method, k, y_true, y_pred``, ...).
    k : int
        Support size to show.
    methods : sequence of str, optional
        Methods and their order; default all methods with predictions at ``k``.
    colors : mapping, optional
        Colour per method.
    n_bins : int, default 10
        Number of equal-width bins.
    cell : float, default 290
        Size of each method's cell (panel and labels) in pixels.

    Returns
    -------
    str
        SVG document.
    """
    by_method, methods, colors, canvas, places = _method_grid(predictions, k, methods, colors, cell)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for (left, top, side), method in zip(places, methods, strict=True):
        panel = canvas.panel(left, top, side, side, (0.0, 1.0), (0.0, 1.0))
        panel.axes(_UNIT_TICKS, _UNIT_TICKS, xlabel="predicted risk", ylabel="observed rate", grid=False, size=9)
        panel.line([0, 1], [0, 1], "#999999", 0.8, "2,2")
        y, p = by_method.get(method, _NO_OUTCOMES)
        if len(y) == 0:
            panel.title([method, "(no predictions)"], size=10)
            continue
        idx = np.minimum((np.clip(p, 0, 1) * n_bins).astype(int), n_bins - 1)
        counts = np.bincount(idx, minlength=n_bins)
        filled = counts > 0
        mean_p = np.bincount(idx, weights=p, minlength=n_bins)[filled] / counts[filled]
        rate = np.bincount(idx, weights=y, minlength=n_bins)[filled] / counts[filled]
        # Histogram of predictions, scaled to at most 20% of the panel height.
        panel.bars(edges[:-1], counts / counts.max() * 0.2, 1.0 / n_bins, "#dddddd")
        panel.line(mean_p, rate, colors[method], 1.2)
        # marker area grows with the bin's count
        panel.circles(mean_p, rate, colors[method], np.sqrt(12 + 90 * counts[filled] / counts.max()) * 0.75, edge="white")
        pooled_ece = ece(y, np.clip(p, 0, 1), n_bins=n_bins)
        panel.title([method, f"{get_metric('ece').label} {pooled_ece:.3f}, n = {len(y)}"], size=10)
    canvas.text(canvas.width / 2, 17, f"Reliability at K={k} (pooled over held-out tasks and draws)", 11, "middle")
    return canvas.to_svg(f"Reliability diagrams at K={k}")


def predicted_vs_observed_svg(
    predictions: pd.DataFrame,
    k: int,
    *,
    methods: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    n_bins: int = 10,
    cell: float = 290.0,
    max_points: int = 1500,
) -> str:
    """Calibration plot for numeric outcomes: observed versus predicted, per method.

    Points are a deterministic thinning to at most ``max_points`` per panel (every
    n-th row, so the picture does not depend on a random seed); the line joins mean
    observed values within ``n_bins`` quantile bins of the prediction.

    Parameters
    ----------
    predictions : DataFrame
        Query-set predictions; ``y_pred`` holds the numeric prediction.
    k : int
        Support size to show.
    methods, colors, n_bins, cell
        As in :func:`reliability_svg`.
    max_points : int, default 1500
        Maximum scatter points per panel.

    Returns
    -------
    str
        SVG document.
    """
    by_method, methods, colors, canvas, places = _method_grid(predictions, k, methods, colors, cell)
    error = primary_metric("numeric")
    for (left, top, side), method in zip(places, methods, strict=True):
        y, pred = by_method.get(method, _NO_OUTCOMES)
        if len(y) == 0:
            panel = canvas.panel(left, top, side, side, (0.0, 1.0), (0.0, 1.0))
            panel.axes([], [], grid=False)
            panel.title([method, "(no predictions)"], size=10)
            continue
        lo, hi = _y_range([y, pred])
        panel = canvas.panel(left, top, side, side, (lo, hi), (lo, hi))
        ticks = [t for t in nice_ticks(lo, hi) if lo <= t <= hi]
        panel.axes(ticks, ticks, xlabel="predicted", ylabel="observed", grid=False, size=9)
        step = max(1, math.ceil(len(y) / max_points))
        panel.circles(pred[::step], y[::step], colors[method], 1.5, opacity=0.3)
        panel.line([lo, hi], [lo, hi], "#999999", 0.8, "2,2")
        qs = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)))
        if len(qs) > 1:
            idx = np.clip(np.searchsorted(qs, pred, side="right") - 1, 0, len(qs) - 2)
            counts = np.bincount(idx, minlength=len(qs) - 1)
            filled = counts > 0
            mx = np.bincount(idx, weights=pred, minlength=len(qs) - 1)[filled] / counts[filled]
            my = np.bincount(idx, weights=y, minlength=len(qs) - 1)[filled] / counts[filled]
            panel.line(mx, my, colors[method], 1.2)
            panel.circles(mx, my, colors[method], 2.2)
        panel.title([method, f"{error.label} {error(y, pred):.3g}, n = {len(y)}"], size=10)
    canvas.text(canvas.width / 2, 17, f"Predicted vs observed at K={k} (pooled over held-out tasks)", 11, "middle")
    return canvas.to_svg(f"Predicted versus observed at K={k}")
