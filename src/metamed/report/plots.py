"""Report figures, each returned as PNG bytes ready to inline in HTML.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly,
not through ``pyplot``: no global figure registry, no backend switching, nothing left
open between calls, and safe to use from a server thread.

Inputs are the tables of :mod:`metamed.evaluation`: a ``summary`` from
:func:`metamed.evaluation.statistics.summarise` (one dataset) and the ``predictions``
table (``method, dataset, task, k, draw, y_true, y_pred``).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metamed.errors import MetamedValueError
from metamed.evaluation.metrics import ece, get_metric, primary_metric

__all__ = [
    "method_colors",
    "figure_to_png",
    "kshot_curve_png",
    "kshot_panels_png",
    "kshot_small_multiples_png",
    "reliability_png",
    "predicted_vs_observed_png",
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
_DPI = 110


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


def figure_to_png(fig: Figure, dpi: int = _DPI) -> bytes:
    """Render a figure to PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is attached to an Agg canvas if it has none.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    bytes
        PNG file content.
    """
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # constrained layout already fits the labels; bbox_inches="tight" would redo that work.
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _new_figure(
    width_in: float, height_in: float, layout: Literal["constrained"] | None = "constrained"
) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout=layout)
    FigureCanvasAgg(fig)
    return fig


# Fixed margins of a grid of per-method panels, in inches: room for tick labels and axis
# labels (left, bottom), a two-line panel title (between rows) and the figure title (top).
# Constrained layout would find them too, but it lays out every panel's ticks and texts
# an extra time, which doubled the report's rendering time for ten-method grids.
_GRID_LEFT_IN, _GRID_RIGHT_IN, _GRID_BOTTOM_IN, _GRID_TOP_IN = 0.5, 0.1, 0.45, 0.7
_GRID_GAP_W_IN, _GRID_GAP_H_IN = 0.55, 0.75


def _grid_figure(n_rows: int, n_cols: int, panel_in: float) -> tuple[Figure, np.ndarray]:
    """A figure of ``panel_in`` inches per grid cell (panel and its labels), as before."""
    width, height = panel_in * n_cols, panel_in * n_rows + 0.3
    axes_w = (width - _GRID_LEFT_IN - _GRID_RIGHT_IN - (n_cols - 1) * _GRID_GAP_W_IN) / n_cols
    axes_h = (height - _GRID_BOTTOM_IN - _GRID_TOP_IN - (n_rows - 1) * _GRID_GAP_H_IN) / n_rows
    fig = _new_figure(width, height, layout=None)
    axes = fig.subplots(
        n_rows,
        n_cols,
        squeeze=False,
        gridspec_kw={
            "left": _GRID_LEFT_IN / width,
            "right": 1 - _GRID_RIGHT_IN / width,
            "bottom": _GRID_BOTTOM_IN / height,
            "top": 1 - _GRID_TOP_IN / height,
            "wspace": _GRID_GAP_W_IN / axes_w,
            "hspace": _GRID_GAP_H_IN / axes_h,
        },
    )
    return fig, axes.reshape(-1)


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


def _draw_kshot(
    ax: Axes,
    summary: pd.DataFrame,
    metric: str,
    methods: Sequence[str],
    colors: Mapping[str, str],
    baselines: Collection[str],
    *,
    legend: bool,
    bands: bool = True,
) -> None:
    rows = summary[summary["metric"] == metric]
    ks = np.sort(rows["k"].unique()).astype(float)
    by_method = {str(m): r.sort_values("k") for m, r in rows.groupby("method", sort=False)}
    plotted = False
    for method in methods:
        r = by_method.get(method)
        if r is None:
            continue
        k = r["k"].to_numpy(dtype=float)
        mean = r["mean"].to_numpy(dtype=float)
        lo = r["ci_low"].to_numpy(dtype=float)
        hi = r["ci_high"].to_numpy(dtype=float)
        if not np.isfinite(mean).any():
            continue
        style = "--" if method in baselines else "-"
        width, size = (1.8, 4) if bands else (1.0, 2)
        ax.plot(k, mean, style, marker="o", ms=size, lw=width, color=colors[method], label=method)
        band = np.isfinite(lo) & np.isfinite(hi)
        if bands and band.any():
            # many overlapping bands turn into mud: fade them as methods are added
            ax.fill_between(
                k, np.where(band, lo, np.nan), np.where(band, hi, np.nan),
                color=colors[method], alpha=min(0.15, 0.6 / len(methods)), lw=0,
            )  # fmt: skip
        plotted = True
    scorer = get_metric(metric)
    if scorer.target is not None:
        ax.axhline(scorer.target, color="#888888", lw=0.8, ls=":")
    if len(ks) and ks.min() > 0 and ks.max() / ks.min() >= 4:
        # K grows geometrically (1, 5, 10, 20, 50): a log axis spaces the points evenly.
        ax.set_xscale("log")
    if len(ks):
        ax.set_xticks(ks)
        ax.set_xticklabels([f"{int(k)}" if float(k).is_integer() else f"{k:g}" for k in ks])
        ax.minorticks_off()
    ax.set_xlabel("K (labelled support examples)")
    ax.set_ylabel(scorer.axis_label)
    ax.grid(True, color="#e6e6e6", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not plotted:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    elif legend:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def kshot_curve_png(
    summary: pd.DataFrame,
    metric: str,
    *,
    methods: Sequence[str] | None = None,
    baselines: Collection[str] = (),
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
    width_in: float = 7.0,
    height_in: float = 4.2,
) -> bytes:
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
        Axes title.
    width_in, height_in : float
        Figure size in inches.

    Returns
    -------
    bytes
        PNG image.
    """
    _check_summary(summary)
    methods = list(methods) if methods is not None else sorted(map(str, summary["method"].unique()))
    colors = dict(colors) if colors is not None else method_colors(methods)
    fig = _new_figure(width_in, height_in)
    ax = fig.add_subplot()
    _draw_kshot(ax, summary, metric, methods, colors, set(baselines), legend=True)
    if title:
        ax.set_title(title, fontsize=11)
    return figure_to_png(fig)


def kshot_small_multiples_png(
    summary: pd.DataFrame,
    metric: str,
    *,
    methods: Sequence[str],
    baselines: Collection[str],
    colors: Mapping[str, str] | None = None,
    panel_in: float = 2.6,
    max_cols: int = 3,
) -> bytes:
    """One small K-shot panel per method that is not a baseline, the baselines in each.

    Every panel shows its method with its CI band, and the baselines as thin grey dashed
    lines without bands, on one shared y axis: seven overlapping bands on one axes read as
    mud, while each method beside the same references reads at a glance.

    Returns
    -------
    bytes
        PNG image.
    """
    _check_summary(summary)
    colors = dict(colors) if colors is not None else method_colors(list(methods))
    shown = [m for m in methods if m not in baselines]
    refs = [m for m in methods if m in baselines]
    n = max(len(shown), 1)
    cols = min(max_cols, n)
    rows_ = int(np.ceil(n / cols))
    fig = _new_figure(panel_in * cols + 0.4, panel_in * 0.85 * rows_ + 0.5)
    axes = fig.subplots(rows_, cols, sharex=True, sharey=True, squeeze=False)
    grey = {m: "#9aa1ad" for m in refs}
    for index, ax in enumerate(axes.ravel()):
        if index >= len(shown):
            ax.set_visible(False)
            continue
        method = shown[index]
        _draw_kshot(ax, summary, metric, [method], colors, set(), legend=False)
        if refs:
            _draw_kshot(ax, summary, metric, refs, grey, set(refs), legend=False, bands=False)
        ax.set_title(method, fontsize=9, color=colors[method], fontweight="bold")
        ax.tick_params(labelsize=7)
        if index % cols:
            ax.set_ylabel("")
        if index < len(shown) - cols:
            ax.set_xlabel("")
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
    if refs:
        fig.suptitle(f"dashed grey: baselines ({', '.join(refs)})", fontsize=8, color="#5b6475")
    return figure_to_png(fig)


def kshot_panels_png(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    baselines: Collection[str] = (),
    colors: Mapping[str, str] | None = None,
    panel_in: float = 3.3,
) -> bytes:
    """Small K-shot panels side by side, one per metric (legend on the first only).

    Parameters
    ----------
    summary : DataFrame
        Output of ``summarise`` for one dataset.
    metrics : sequence of str
        Metrics, one panel each; metrics absent from ``summary`` are skipped.
    methods, baselines, colors
        As in :func:`kshot_curve_png`.
    panel_in : float, default 3.3
        Width and height of each panel in inches.

    Returns
    -------
    bytes
        PNG image.
    """
    _check_summary(summary)
    present = set(summary["metric"].unique())
    metrics = [m for m in metrics if m in present]
    if not metrics:
        raise MetamedValueError(
            f"None of the requested metrics is in summary; present: {sorted(present)}."
        )
    methods = list(methods) if methods is not None else sorted(map(str, summary["method"].unique()))
    colors = dict(colors) if colors is not None else method_colors(methods)
    fig = _new_figure(panel_in * len(metrics), panel_in * 0.85)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for i, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
        _draw_kshot(ax, summary, metric, methods, colors, set(baselines), legend=i == 0)
        ax.set_title(get_metric(metric).label, fontsize=10)
    return figure_to_png(fig)


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


def _method_panels(
    predictions: pd.DataFrame,
    k: int,
    methods: Sequence[str] | None,
    colors: Mapping[str, str] | None,
    panel_in: float,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], dict[str, str], Figure, np.ndarray]:
    """Observed and predicted values per method at ``k``, and a grid of one panel per method.

    Returns the finite ``(y, pred)`` pairs per method (one pass over the table, however
    many methods), the methods (default: all with predictions at ``k``), the colour per
    method, the figure and its flat array of axes.
    """
    _check_predictions(predictions)
    at_k = predictions[predictions["k"] == k]
    by_method = {
        str(m): _finite_outcomes(rows)
        for m, rows in at_k.groupby("method", sort=True, observed=True)
    }
    if methods is None:
        methods = sorted(by_method)
    methods = list(methods)
    colors = dict(colors) if colors is not None else method_colors(methods)
    n_rows, n_cols = _grid(max(len(methods), 1))
    fig, axes = _grid_figure(n_rows, n_cols, panel_in)
    return by_method, methods, colors, fig, axes


_NO_OUTCOMES = (np.empty(0), np.empty(0))
_UNIT_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _finite_outcomes(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Observed and predicted values of ``rows``, keeping rows where both are finite."""
    y = rows["y_true"].to_numpy(dtype=float)
    pred = rows["y_pred"].to_numpy(dtype=float)
    keep = np.isfinite(y) & np.isfinite(pred)
    return y[keep], pred[keep]


def _finish_panels(fig: Figure, axes: np.ndarray, n_used: int, title: str) -> bytes:
    """Hide the grid's unused panels, add the figure title and render to PNG."""
    for ax in axes[n_used:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return figure_to_png(fig)


def reliability_png(
    predictions: pd.DataFrame,
    k: int,
    *,
    methods: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    n_bins: int = 10,
    panel_in: float = 2.9,
) -> bytes:
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
    panel_in : float, default 2.9
        Panel size in inches.

    Returns
    -------
    bytes
        PNG image.
    """
    by_method, methods, colors, fig, axes = _method_panels(
        predictions, k, methods, colors, panel_in
    )
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for ax, method in zip(axes, methods, strict=False):
        y, p = by_method.get(method, _NO_OUTCOMES)
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        # Fixed ticks: cheaper to draw than the automatic locator's, and the same on every panel.
        ax.set_xticks(_UNIT_TICKS)
        ax.set_yticks(_UNIT_TICKS)
        ax.set_aspect("equal")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if len(y) == 0:
            ax.set_title(f"{method}\n(no predictions)", fontsize=9)
            continue
        idx = np.minimum((np.clip(p, 0, 1) * n_bins).astype(int), n_bins - 1)
        counts = np.bincount(idx, minlength=n_bins)
        filled = counts > 0
        mean_p = np.bincount(idx, weights=p, minlength=n_bins)[filled] / counts[filled]
        rate = np.bincount(idx, weights=y, minlength=n_bins)[filled] / counts[filled]
        # Histogram of predictions, scaled to at most 20% of the panel height.
        heights = counts / counts.max() * 0.2
        ax.bar(edges[:-1], heights, width=1.0 / n_bins, align="edge", color="#dddddd", lw=0)
        sizes = 12 + 90 * counts[filled] / counts.max()
        ax.plot(mean_p, rate, "-", color=colors[method], lw=1.2)
        ax.scatter(mean_p, rate, s=sizes, color=colors[method], zorder=3, edgecolor="white")
        pooled_ece = ece(y, np.clip(p, 0, 1), n_bins=n_bins)
        ax.set_title(
            f"{method}\n{get_metric('ece').label} {pooled_ece:.3f}, n = {len(y)}", fontsize=9
        )
        ax.set_xlabel("predicted risk", fontsize=8)
        ax.set_ylabel("observed rate", fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish_panels(
        fig, axes, len(methods), f"Reliability at K={k} (pooled over held-out tasks and draws)"
    )


def predicted_vs_observed_png(
    predictions: pd.DataFrame,
    k: int,
    *,
    methods: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    n_bins: int = 10,
    panel_in: float = 2.9,
    max_points: int = 4000,
) -> bytes:
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
    methods, colors, n_bins, panel_in
        As in :func:`reliability_png`.
    max_points : int, default 4000
        Maximum scatter points per panel.

    Returns
    -------
    bytes
        PNG image.
    """
    by_method, methods, colors, fig, axes = _method_panels(
        predictions, k, methods, colors, panel_in
    )
    error = primary_metric("numeric")
    for ax, method in zip(axes, methods, strict=False):
        y, pred = by_method.get(method, _NO_OUTCOMES)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if len(y) == 0:
            ax.set_title(f"{method}\n(no predictions)", fontsize=9)
            continue
        step = max(1, len(y) // max_points)
        ax.scatter(pred[::step], y[::step], s=4, alpha=0.3, color=colors[method], lw=0)
        lo = float(min(y.min(), pred.min()))
        hi = float(max(y.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="#999999", lw=0.8, ls=":")
        qs = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)))
        if len(qs) > 1:
            idx = np.clip(np.searchsorted(qs, pred, side="right") - 1, 0, len(qs) - 2)
            counts = np.bincount(idx, minlength=len(qs) - 1)
            filled = counts > 0
            mx = np.bincount(idx, weights=pred, minlength=len(qs) - 1)[filled] / counts[filled]
            my = np.bincount(idx, weights=y, minlength=len(qs) - 1)[filled] / counts[filled]
            ax.plot(mx, my, "-o", color=colors[method], ms=3, lw=1.2)
        ax.set_title(f"{method}\n{error.label} {error(y, pred):.3g}, n = {len(y)}", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("observed", fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish_panels(
        fig, axes, len(methods), f"Predicted vs observed at K={k} (pooled over held-out tasks)"
    )
