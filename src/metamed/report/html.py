"""One self-contained HTML evaluation report: figures, tables, verdicts, model card, provenance.

This module gathers what the report says (tables, figures, verdicts, limitations) as
plain values; the page itself is the ``benchmark.html`` template of the report engine
(:mod:`metamed.report.engine`), which escapes all text that comes from data (method,
task and dataset names, provenance values).  The file has no external assets: CSS is
inline and every figure is a base64 PNG ``data:`` URI, so it can be e-mailed, archived
next to the results, or opened offline.  Metric labels, directions, ideal values and
which metrics each outcome kind shows come from the metric registry
(:data:`metamed.evaluation.metrics.METRICS`).

Recognised ``provenance`` keys (all optional; every key is also listed verbatim in the
provenance section):

``dataset``, ``source`` / ``data_source``, ``licence`` / ``license``,
``simulated`` (bool) or ``data_kind`` (``"simulated"`` / ``"real"``), ``checksums``,
``config``, ``seeds`` / ``seed``, ``versions`` / ``package_versions``,
``metamed_version``, ``command`` / ``command_line``, ``timestamp``, and ``model_card``
(a dict with ``intended_use``, ``out_of_scope``, ``limitations``, ``ethical_considerations``
that replaces or extends the generated text).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.metrics import (
    Metric,
    Role,
    get_metric,
    headline_metrics,
    metrics_for,
    outcome_kind,
    primary_metric,
)
from metamed.evaluation.statistics import FEW_TASKS, RESULT_COLUMNS
from metamed.outcomes import as_outcome
from metamed.report import plots
from metamed.report.engine import Cell, Image, Table, format_number, render
from metamed.report.run_statistics import RunStatistics
from metamed.report.verdicts import key_findings

__all__ = ["write_report", "render_report"]

_PREDICTION_COLUMNS = ("method", "dataset", "task", "k", "draw", "y_true", "y_pred")
# The per-task table folds away behind a "show" toggle beyond this many rows.
_FOLD_ROWS = 60


# ----------------------------------------------------------------------------- helpers


def _best_index(values: Sequence[float], metric: Metric) -> set[int]:
    """Positions of the best finite value(s) for ``metric`` (ties all count)."""
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return set()
    best = min(metric.loss(v) for _, v in finite)
    return {i for i, v in finite if metric.loss(v) == best}


def _check_inputs(results: pd.DataFrame, predictions: pd.DataFrame | None) -> None:
    if not isinstance(results, pd.DataFrame):
        raise MetamedValueError(
            f"results must be a pandas DataFrame; received {type(results).__name__}."
        )
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise MetamedValueError(
            f"results is missing column(s) {missing}; expected {list(RESULT_COLUMNS)}, received "
            f"{list(results.columns)}. Pass the tidy table from the evaluation protocol."
        )
    if results.empty:
        raise MetamedValueError(
            "results is empty: there is nothing to report. Run the evaluation protocol first."
        )
    if predictions is not None:
        if not isinstance(predictions, pd.DataFrame):
            raise MetamedValueError(
                f"predictions must be a pandas DataFrame or None; received "
                f"{type(predictions).__name__}."
            )
        missing = [c for c in ("method", "k", "y_true", "y_pred") if c not in predictions.columns]
        if missing:
            raise MetamedValueError(
                f"predictions is missing column(s) {missing}; expected "
                f"{list(_PREDICTION_COLUMNS)}, received {list(predictions.columns)}."
            )


def _data_kind(provenance: Mapping[str, object]) -> str:
    """'simulated', 'real' or 'unknown' from the provenance keys."""
    sim = provenance.get("simulated")
    if isinstance(sim, (bool, np.bool_)):
        return "simulated" if sim else "real"
    kind = str(provenance.get("data_kind", provenance.get("data_type", ""))).lower()
    if kind.startswith("sim") or kind == "synthetic":
        return "simulated"
    if kind.startswith("real"):
        return "real"
    return "unknown"


def _flatten(obj: object, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested mappings into ``(dotted.key, value)`` rows for the provenance table."""
    rows: list[tuple[str, str]] = []
    if isinstance(obj, Mapping):
        if not obj and prefix:
            rows.append((prefix, "{}"))
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            rows.extend(_flatten(value, name))
    elif isinstance(obj, (list, tuple)) and any(isinstance(v, Mapping) for v in obj):
        for i, value in enumerate(obj):
            rows.extend(_flatten(value, f"{prefix}[{i}]"))
    elif isinstance(obj, (list, tuple, set)):
        rows.append((prefix, ", ".join(map(_rounded, obj))))
    else:
        rows.append((prefix, _rounded(obj)))
    return rows


def _rounded(value: object) -> str:
    """A provenance value as text; floats to 4 significant digits (timings, fractions)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ks(results: pd.DataFrame) -> list[int]:
    return [int(k) for k in sorted(results["k"].unique())]


# ---------------------------------------------------------------------------- sections


def _summary_table(summary: pd.DataFrame, metric: Metric, order: Sequence[str]) -> Table:
    rows_metric = summary[summary["metric"] == metric.name]
    ks = [int(k) for k in sorted(rows_metric["k"].unique())]
    cell: dict[tuple[str, int], Mapping[str, Any]] = {
        (str(r["method"]), int(r["k"])): r for r in rows_metric.to_dict("records")
    }
    best_by_k = {
        k: _best_index(
            [float(cell[(m, k)]["mean"]) if (m, k) in cell else math.nan for m in order], metric
        )
        for k in ks
    }
    rows: list[list[Cell | str]] = []
    for i, method in enumerate(order):
        row: list[Cell | str] = [method]
        for k in ks:
            r = cell.get((method, k))
            if r is None:
                row.append("—")
                continue
            ci = ""
            if math.isfinite(float(r["ci_low"])):
                ci = f"[{format_number(r['ci_low'])}, {format_number(r['ci_high'])}]"
            row.append(Cell(format_number(r["mean"]), ci=ci, best=i in best_by_k[k]))
        rows.append(row)
    return Table(["method", *[f"K={k}" for k in ks]], rows)


def _per_task_table(results: pd.DataFrame, metric: Metric, order: Sequence[str]) -> Table:
    rows_metric = results[results["metric"] == metric.name]
    per = rows_metric.groupby(["task", "method", "k"])["value"].mean().to_dict()
    ks = sorted(rows_metric["k"].unique())
    tasks = sorted(rows_metric["task"].unique(), key=str)
    present = set(zip(rows_metric["task"], rows_metric["method"].astype(str), strict=True))
    rows: list[list[Cell | str]] = []
    for task in tasks:
        shown = [(i, m) for i, m in enumerate(order) if (task, m) in present]
        # Best method per (task, K), highlighted within the task's block of rows.
        block = {k: [float(per.get((task, m, k), math.nan)) for m in order] for k in ks}
        best = {k: _best_index(v, metric) for k, v in block.items()}
        for j, (i, method) in enumerate(shown):
            row: list[Cell | str] = [str(task) if j == 0 else "", method]
            row += [Cell(format_number(block[k][i]), best=i in best[k]) for k in ks]
            rows.append(row)
    return Table(["task", "method", *[f"K={int(k)}" for k in ks]], rows, left_cols=2)


def _judgement_class(judgement: str) -> str:
    if judgement in ("better", "worse"):
        return judgement
    return "weak" if judgement.startswith("leaning") else "none"


def _verdict_section(
    stats: RunStatistics,
    dataset: str,
    metric: Metric,
    missing_baselines: Sequence[str],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """What the template shows for one metric's verdicts, and the verdict table itself."""
    section: dict[str, Any] = {
        "label": metric.label,
        "pct": f"{stats.level * 100:g}%",
        "missing_baselines": ", ".join(missing_baselines),
        "message": "",
        "by_k": [],
    }
    if not stats.base:
        section["message"] = (
            "No baselines were declared (or none has results), so no method is compared "
            "with a baseline. A meta-learner is only useful if it beats simple baselines; "
            "rerun with baselines."
        )
        return section, pd.DataFrame()
    if not stats.meta:
        section["message"] = "Only baselines were evaluated; there is no other method to judge."
        return section, pd.DataFrame()
    v = stats.verdicts(metric.name)
    v = v[v["dataset"] == dataset].reset_index(drop=True) if len(v) else v
    if v.empty:
        section["message"] = "No paired comparisons were possible (no shared episodes)."
        return section, v
    for k in sorted(v["k"].unique()):
        items = [
            {"judgement": j, "cls": _judgement_class(j), "sentence": sentence}
            for j, sentence in zip(
                v.loc[v["k"] == k, "judgement"], v.loc[v["k"] == k, "sentence"], strict=True
            )
        ]
        section["by_k"].append({"k": int(k), "items": items})
    return section, v


def _model_card(
    provenance: Mapping[str, object],
    results: pd.DataFrame,
    meta: Sequence[str],
    base: Sequence[str],
    verdict_table: pd.DataFrame,
    n_boot: int,
    level: float,
    reliability_pooled: bool,
) -> dict[str, Any]:
    card = provenance.get("model_card")
    card = card if isinstance(card, Mapping) else {}
    datasets = ", ".join(map(str, sorted(results["dataset"].unique(), key=str)))
    n_tasks = results.groupby("dataset")["task"].nunique()
    draws = results.groupby("dataset")["draw"].nunique()
    ks = _ks(results)
    metrics = sorted(results["metric"].unique(), key=str)
    intended = card.get(
        "intended_use",
        "Research comparison of meta-learning methods for adapting a clinical prediction "
        "model to a new task (site, condition or patient) from a few labelled examples. "
        "Not for clinical decision-making without prospective, local validation.",
    )
    out_of_scope = card.get(
        "out_of_scope",
        "Populations, outcome definitions or measurement practices unlike those of the "
        "meta-training tasks; use without checking calibration on the target site.",
    )

    limitations: list[str] = []
    min_tasks = int(n_tasks.min())
    if min_tasks < FEW_TASKS:
        limitations.append(
            f"Only {min_tasks} held-out task(s): bootstrap intervals over tasks are coarse "
            f"(and tend to be too narrow), and a Wilcoxon test on {min_tasks} tasks has "
            f"little or no power."
        )
    nan_share = results["value"].isna().groupby(results["metric"]).mean()
    for metric, share in nan_share.items():
        if share > 0:
            limitations.append(
                f"{share:.0%} of {get_metric(str(metric)).label} values are undefined (e.g. a "
                f"query set with one class, or a calibration fit without a finite solution) and "
                f"are left out of the means."
            )
    if not verdict_table.empty:
        not_better = verdict_table[verdict_table["judgement"] != "better"]
        for method in meta:
            ks_not = sorted(not_better.loc[not_better["method"] == method, "k"].tolist())
            if ks_not:
                limitations.append(
                    f"{method} does not clearly beat the best baseline at K = "
                    f"{', '.join(map(str, ks_not))}."
                )
    elif base and meta:
        limitations.append("No paired comparison with a baseline could be made.")
    if reliability_pooled:
        limitations.append(
            "Reliability diagrams pool all held-out tasks; a pooled curve can look calibrated "
            "while single sites are not. Check per-site calibration before local use."
        )
    limitations.append(
        "Held-out tasks come from the same data source as the meta-training tasks; "
        "performance under a different population or coding practice is not established."
    )
    extra = card.get("limitations")
    if isinstance(extra, str):
        limitations.append(extra)
    elif isinstance(extra, Iterable):
        limitations.extend(map(str, extra))

    protocol_rows = [
        ("Dataset(s)", datasets),
        ("Held-out tasks", ", ".join(f"{d}: {n}" for d, n in n_tasks.items())),
        ("Support sizes K", ", ".join(map(str, ks))),
        ("Draws per task and K", ", ".join(f"{d}: {n}" for d, n in draws.items())),
        ("Methods", ", ".join(meta) or "—"),
        ("Baselines", ", ".join(base) or "—"),
        ("Metrics", ", ".join(get_metric(str(m)).label for m in metrics)),
        (
            "Uncertainty",
            f"mean over tasks (each task averaged over draws); {level * 100:g}% percentile "
            f"bootstrap over tasks, {n_boot} resamples, seeded per cell",
        ),
    ]
    source = provenance.get("source", provenance.get("data_source"))
    licence = provenance.get("licence", provenance.get("license"))
    if source is not None:
        protocol_rows.insert(1, ("Source", str(source)))
    if licence is not None:
        protocol_rows.insert(2, ("Licence", str(licence)))
    ethics = card.get("ethical_considerations")
    return {
        "intended": str(intended),
        "out_of_scope": str(out_of_scope),
        "protocol": Table(["item", "value"], [list(r) for r in protocol_rows], left_cols=2),
        "limitations": limitations,
        "ethics": str(ethics) if ethics else "",
    }


def _provenance_section(provenance: Mapping[str, object]) -> dict[str, Any] | None:
    if not provenance:
        return None
    rows = [[k, v] for k, v in _flatten(provenance) if not k.startswith("model_card")]
    raw = json.dumps(provenance, indent=2, sort_keys=True, default=str)
    versions, seeds = provenance.get("versions"), provenance.get("seeds")
    commit = provenance.get("git_commit")
    lead = [
        ("data", provenance.get("source") or provenance.get("dataset")),
        ("metamed", provenance.get("metamed_version")),
        ("code", str(commit)[:12] if commit else None),
        ("torch", versions.get("torch") if isinstance(versions, Mapping) else None),
        ("seed", seeds.get("seed") if isinstance(seeds, Mapping) else None),
        ("run at", provenance.get("timestamp")),
    ]  # fmt: skip
    return {
        "lead": "; ".join(f"{k} {v}" for k, v in lead if v not in (None, "")),
        "table": Table(["key", "value"], rows, left_cols=2),
        "n_rows": len(rows),
        "raw": raw,
    }


def _dataset_block(
    dataset: str,
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
    stats: RunStatistics,
    missing_baselines: Sequence[str],
    reliability_ks: Sequence[int] | None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """What the template shows for one dataset, and its primary metric's verdict table."""
    meta, base = stats.meta, stats.base
    summary = stats.summary[stats.summary["dataset"] == dataset]
    metrics = set(results["metric"].unique())
    kind = outcome_kind(metrics)
    primary = primary_metric(kind)
    if primary.name not in metrics:
        primary = get_metric(sorted(metrics, key=str)[0])
    order = [*meta, *base]
    colors = plots.method_colors(order)
    ks = _ks(results)
    label = primary.label
    block: dict[str, Any] = {
        "name": dataset,
        "anchor": "ds-" + "".join(ch if ch.isalnum() else "-" for ch in str(dataset)),
        "n_methods": len(order),
        "n_tasks": results["task"].nunique(),
        "ks": ", ".join(map(str, ks)),
        "n_draws": results["draw"].nunique(),
        "label": label,
        "pct": f"{stats.level * 100:g}%",
        "summary": _summary_table(summary, primary, order),
    }

    block["verdicts"], vt = _verdict_section(stats, dataset, primary, missing_baselines)

    if meta and base and len(order) > 3:
        # many methods: one small panel each, beside the same baselines (a single axes
        # with seven overlapping CI bands reads as mud)
        curve = plots.kshot_small_multiples_svg(
            summary, primary.name, methods=order, baselines=base, colors=colors
        )
        block["curve_caption"] = "small multiples"
    else:
        curve = plots.kshot_curve_svg(
            summary, primary.name, methods=order, baselines=base, colors=colors,
            title=f"{label} vs K on held-out tasks ({dataset})",
        )  # fmt: skip
        block["curve_caption"] = "one axes"
    block["curve"] = Image(curve, f"{label} versus K")

    def panels(roles: Sequence[Role], alt: str) -> Image | None:
        """K-shot panels of this kind's metrics with these roles, where results hold them."""
        wanted = [m.name for m in metrics_for(kind, roles=roles) if m.name != primary.name]
        present = [m for m in wanted if m in metrics]
        if not present:
            return None
        svg = plots.kshot_panels_svg(summary, present, methods=order, baselines=base, colors=colors)
        return Image(svg, alt)

    block["secondary"] = panels(("primary", "headline", "secondary"), "secondary metrics versus K")
    block["recalibration"] = panels(("recalibration",), "calibration slope and intercept versus K")

    # Reliability diagrams for probabilities, predicted vs observed for numbers.
    probabilities = as_outcome(kind).predicts_probabilities
    block["reliability_title"] = (
        "Reliability diagrams" if probabilities else "Predicted vs observed"
    )
    block["reliability"] = []
    block["reliability_message"] = ""
    preds = predictions
    if predictions is not None and "dataset" in predictions.columns:
        of_dataset = predictions["dataset"] == dataset
        # a run of one dataset (the usual case) is not copied: that copy was the largest
        # allocation of a large run's report
        preds = predictions if of_dataset.all() else predictions[of_dataset]
    if preds is None or preds.empty:
        block["reliability_message"] = "No query-set predictions were provided."
    else:
        pred_ks = sorted(int(k) for k in preds["k"].unique())
        if reliability_ks is None:
            show = sorted({pred_ks[0], pred_ks[-1]})
        else:
            show = [int(k) for k in reliability_ks if int(k) in pred_ks]
        with_predictions = {str(m) for m in preds["method"].unique()}
        pred_methods = [m for m in order if m in with_predictions]
        fig_fn = plots.reliability_svg if probabilities else plots.predicted_vs_observed_svg
        block["reliability"] = [
            Image(fig_fn(preds, k, methods=pred_methods, colors=colors), f"K={k}") for k in show
        ]
        if not show:
            block["reliability_message"] = "None of the requested K values has predictions."

    # Every headline metric after the primary gets its own verdicts: adapting can fix
    # calibration without changing discrimination.
    more = [
        _verdict_section(stats, dataset, m, ())
        for m in headline_metrics(kind)[1:]
        if m.name in metrics and m.name != primary.name and meta and base
    ]
    block["more_verdicts"] = [section for section, _ in more]
    # Key findings: discrimination and calibration together, in plain words.
    block["headline"] = key_findings([vt, *(table for _, table in more)])
    per_task = _per_task_table(results, primary, order)
    block["per_task"] = per_task
    block["per_task_folded"] = len(per_task.rows) > _FOLD_ROWS
    return block, vt


# ---------------------------------------------------------------------------- public API


def render_report(
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
    provenance: Mapping[str, object] | None,
    *,
    title: str = "metamed evaluation report",
    baselines: Sequence[str] = (),
    methods: Sequence[str] | None = None,
    reliability_ks: Sequence[int] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistics: RunStatistics | None = None,
) -> str:
    """Build the report as an HTML string (see :func:`write_report` for the parameters)."""
    _check_inputs(results, predictions)
    provenance = dict(provenance or {})
    baselines = list(baselines)
    present = {str(m) for m in results["method"].unique()}
    missing_baselines = [b for b in baselines if b not in present]
    if methods is not None:
        absent = [m for m in methods if m not in present]
        if absent:
            raise MetamedValueError(
                f"methods {absent} have no rows in results; methods present: "
                f"{sorted(present)}. Fix the names or drop them."
            )
    stats = RunStatistics(
        results, baselines, methods=methods, n_boot=n_boot, level=level, seed=seed
    ).reuse(statistics)
    kind = outcome_kind(results["metric"].unique())
    datasets = sorted(results["dataset"].unique(), key=str)
    blocks, verdict_tables = [], []
    for dataset in datasets:
        block, vt = _dataset_block(
            str(dataset),
            results[results["dataset"] == dataset],
            predictions,
            stats,
            missing_baselines,
            reliability_ks,
        )
        blocks.append(block)
        verdict_tables.append(vt)
    verdict_all = pd.concat(verdict_tables, ignore_index=True) if verdict_tables else pd.DataFrame()

    when = provenance.get("timestamp") or _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds"
    )
    version = provenance.get("metamed_version", "")
    subtitle = f"Dataset: {', '.join(map(str, datasets))} · generated {when}"
    if version:
        subtitle += f" · metamed {version}"
    return render(
        "benchmark.html",
        title=title,
        data_kind=_data_kind(provenance),
        subtitle=subtitle,
        several=len(datasets) > 1,
        datasets=blocks,
        model_card=_model_card(
            provenance,
            results,
            stats.meta,
            stats.base,
            verdict_all,
            n_boot,
            level,
            as_outcome(kind).predicts_probabilities,
        ),
        provenance=_provenance_section(provenance),
    )


def write_report(
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
    provenance: Mapping[str, object] | None,
    path: str | Path,
    *,
    title: str = "metamed evaluation report",
    baselines: Sequence[str] = (),
    methods: Sequence[str] | None = None,
    reliability_ks: Sequence[int] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistics: RunStatistics | None = None,
) -> Path:
    """Write one self-contained HTML report of an evaluation run.

    Sections: title and summary (mean primary metric per method and K with CI),
    K-shot curves with CI bands (AUROC for binary outcomes, RMSE for numeric ones, plus
    small panels of AUPRC/Brier/ECE and calibration slope/intercept, or MAE/R²),
    reliability diagrams pooled over tasks (predicted vs observed for numeric outcomes),
    verdict sentences against the best baseline per K, a per-task table, a model card
    and the provenance.

    Parameters
    ----------
    results : DataFrame
        Tidy results (``method, dataset, task, k, draw, metric, value``).
    predictions : DataFrame or None
        Query-set predictions (``method, dataset, task, k, draw, y_true, y_pred``);
        ``None`` leaves out the reliability diagrams.
    provenance : mapping or None
        Run provenance; see the module docstring for the keys that are interpreted.
    path : str or Path
        Output file; parent folders are created.
    title : str, default "metamed evaluation report"
        Page title.
    baselines : sequence of str, default ()
        Baseline method names; each other method is compared with the best of them.
    methods : sequence of str, optional
        Methods to judge, in display order; default every method not in ``baselines``.
    reliability_ks : sequence of int, optional
        K values for reliability diagrams; default the smallest and largest K.
    n_boot, level, seed
        Bootstrap settings for all intervals (seeded: the report is reproducible).
    statistics : RunStatistics, optional
        The summary and verdict tables of ``results`` under the same baselines, methods
        and bootstrap settings, when another view of the run (``summary.md``) has already
        computed them; they are computed here otherwise.

    Returns
    -------
    Path
        The written file.
    """
    text = render_report(
        results,
        predictions,
        provenance,
        title=title,
        baselines=baselines,
        methods=methods,
        reliability_ks=reliability_ks,
        n_boot=n_boot,
        level=level,
        seed=seed,
        statistics=statistics,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
