"""metamed.report: the report engine, HTML and Markdown reports, figures and verdict prose."""

from metamed.report.engine import render
from metamed.report.html import render_report, write_report
from metamed.report.markdown import summary_markdown
from metamed.report.plots import (
    kshot_curve_svg,
    kshot_panels_svg,
    method_colors,
    predicted_vs_observed_svg,
    reliability_svg,
)
from metamed.report.png import figure_to_png
from metamed.report.run_statistics import RunStatistics
from metamed.report.suite_page import SuiteSection, goal_sentence, suite_markdown
from metamed.report.verdicts import verdict_sentence, verdict_sentences

__all__ = [
    "RunStatistics",
    "SuiteSection",
    "goal_sentence",
    "suite_markdown",
    "write_report",
    "summary_markdown",
    "render_report",
    "render",
    "verdict_sentence",
    "verdict_sentences",
    "figure_to_png",
    "kshot_curve_svg",
    "kshot_panels_svg",
    "method_colors",
    "predicted_vs_observed_svg",
    "reliability_svg",
]
