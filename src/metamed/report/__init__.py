"""metamed.report: self-contained HTML evaluation reports and their figures."""

from metamed.report.html import render_report, write_report
from metamed.report.markdown import summary_markdown
from metamed.report.plots import (
    figure_to_png,
    kshot_curve_png,
    kshot_panels_png,
    method_colors,
    predicted_vs_observed_png,
    reliability_png,
)

__all__ = [
    "write_report",
    "summary_markdown",
    "render_report",
    "figure_to_png",
    "kshot_curve_png",
    "kshot_panels_png",
    "method_colors",
    "predicted_vs_observed_png",
    "reliability_png",
]
