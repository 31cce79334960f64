"""matplotlib figures as PNG bytes, for the dosing report's figures.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly,
not through ``pyplot``: no global figure registry, no backend switching, nothing left
open between calls, and safe to use from a server thread.  (The benchmark report draws
its figures as SVG instead: :mod:`metamed.report.plots`.)
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["figure_to_png"]

_DPI = 110


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
