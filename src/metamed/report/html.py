"""One self-contained HTML evaluation report: figures, tables, verdicts, model card, provenance.

The file has no external assets: CSS is inline and every figure is a base64 PNG
``data:`` URI, so it can be e-mailed, archived next to the results, or opened offline.
All text that comes from data (method, task and dataset names, provenance values) is
HTML-escaped.

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

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.metrics import LOWER_IS_BETTER, METRIC_LABELS, TARGET_VALUE
from metamed.evaluation.statistics import FEW_TASKS, RESULT_COLUMNS, summarise, verdicts
from metamed.report import plots

__all__ = ["write_report", "render_report"]

_BINARY_PANELS = ("auprc", "brier", "ece")
_CALIBRATION_PANELS = ("calibration_slope", "calibration_intercept")
_NUMERIC_PANELS = ("mae", "r2")
_PREDICTION_COLUMNS = ("method", "dataset", "task", "k", "draw", "y_true", "y_prob")

_CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --accent:#0072B2; --bg:#fafbfc; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 60px; background:#fff;
  box-shadow: 0 0 0 1px var(--line); min-height: 100vh; }
h1 { font-size: 1.75rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 38px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 22px 0 8px; }
p, li { max-width: 80ch; }
.sub { color: var(--muted); margin: 0 0 18px; }
.badge { display:inline-block; padding: 2px 10px; border-radius: 999px; font-size: .8rem;
  font-weight: 600; margin-right: 6px; }
.badge.sim { background:#fff3d6; color:#8a5a00; }
.badge.real { background:#dff3e8; color:#17613a; }
.badge.unknown { background:#eceff3; color:#4a5263; }
nav.toc { font-size: .9rem; margin: 12px 0 8px; }
nav.toc a { color: var(--accent); text-decoration: none; margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: .88rem; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th { background: #f3f5f8; font-weight: 600; }
td.l, th.l { text-align: left; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.best { font-weight: 700; color: #0b4f7c; }
.ci { color: var(--muted); font-size: .82em; }
.scroll { overflow-x: auto; }
img.fig { max-width: 100%; height: auto; display: block; margin: 6px 0 4px; }
.caption { color: var(--muted); font-size: .86rem; margin: 0 0 14px; }
ul.verdicts li { margin: 4px 0; }
.v-better { color:#17613a; } .v-worse { color:#a3261b; } .v-weak, .v-none { color:#4a5263; }
.tag { font-size:.75rem; font-weight:700; padding:1px 7px; border-radius:4px; margin-right:6px; }
.tag.better { background:#dff3e8; } .tag.worse { background:#fbe3e0; } .tag.weak, .tag.none { background:#eceff3; }
.note { background:#f6f8fb; border-left: 3px solid var(--accent); padding: 8px 12px; margin: 10px 0; }
pre { background:#f6f8fb; padding: 12px; overflow-x:auto; font-size:.8rem; border-radius: 4px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: .8rem; }
"""


# ----------------------------------------------------------------------------- helpers


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(x: object, digits: int = 3) -> str:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _e(x)
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    left_cols: int = 1,
    raw: bool = False,
) -> str:
    """Render a table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(
        f'<th class="l">{_e(h)}</th>' if i < left_cols else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if raw else _e(cell)
            cls = ' class="l"' if i < left_cols else ""
            if raw and text.startswith("<td"):
                cells.append(text)
            else:
                cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _metric_name(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _is_better(a: float, b: float, metric: str) -> bool:
    """True when value ``a`` is strictly better than ``b`` for ``metric``."""
    if metric in TARGET_VALUE:
        t = TARGET_VALUE[metric]
        return abs(a - t) < abs(b - t)
    return a < b if metric in LOWER_IS_BETTER else a > b


def _best_index(values: Sequence[float], metric: str) -> set[int]:
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return set()
    best = finite[0][1]
    for _, v in finite[1:]:
        if _is_better(v, best, metric):
            best = v
    return {i for i, v in finite if not _is_better(best, v, metric) and v == best}


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
        missing = [c for c in ("method", "k", "y_true", "y_prob") if c not in predictions.columns]
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
        rows.append((prefix, ", ".join(map(str, obj))))
    else:
        rows.append((prefix, str(obj)))
    return rows


def _order_methods(
    results: pd.DataFrame, methods: Sequence[str] | None, baselines: Sequence[str]
) -> tuple[list[str], list[str]]:
    present = [str(m) for m in pd.unique(results["method"])]
    if methods is None:
        meta = sorted(m for m in present if m not in baselines)
    else:
        meta = [m for m in methods if m in present]
    base = [b for b in baselines if b in present]
    return meta, base


def _ks(results: pd.DataFrame) -> list[int]:
    return [int(k) for k in sorted(results["k"].unique())]


# ---------------------------------------------------------------------------- sections


def _summary_table(summary: pd.DataFrame, metric: str, order: Sequence[str]) -> str:
    rows_metric = summary[summary["metric"] == metric]
    ks = sorted(rows_metric["k"].unique())
    cell: dict[tuple[str, int], pd.Series] = {
        (str(r["method"]), int(r["k"])): r for _, r in rows_metric.iterrows()
    }
    best_by_k: dict[int, set[int]] = {}
    for k in ks:
        vals = [
            float(cell[(m, int(k))]["mean"]) if (m, int(k)) in cell else math.nan for m in order
        ]
        best_by_k[int(k)] = _best_index(vals, metric)
    rows = []
    for i, method in enumerate(order):
        row = [f'<td class="l">{_e(method)}</td>']
        for k in ks:
            r = cell.get((method, int(k)))
            if r is None:
                row.append("<td>—</td>")
                continue
            ci = ""
            if math.isfinite(float(r["ci_low"])):
                ci = f' <span class="ci">[{_num(r["ci_low"])}, {_num(r["ci_high"])}]</span>'
            cls = ' class="best"' if i in best_by_k[int(k)] else ""
            row.append(f"<td{cls}>{_num(r['mean'])}{ci}</td>")
        rows.append(row)
    header = ["method", *[f"K={int(k)}" for k in ks]]
    return _table(header, rows, raw=True)


def _per_task_table(results: pd.DataFrame, metric: str, order: Sequence[str]) -> str:
    rows_metric = results[results["metric"] == metric]
    per = rows_metric.groupby(["task", "method", "k"])["value"].mean()
    ks = sorted(rows_metric["k"].unique())
    tasks = sorted(rows_metric["task"].unique(), key=str)
    present = set(zip(rows_metric["task"], rows_metric["method"].astype(str), strict=True))
    rows = []
    for task in tasks:
        shown = [(i, m) for i, m in enumerate(order) if (task, m) in present]
        # Best method per (task, K), highlighted within the task's block of rows.
        block = {int(k): [float(per.get((task, m, k), math.nan)) for m in order] for k in ks}
        best = {k: _best_index(v, metric) for k, v in block.items()}
        for j, (i, method) in enumerate(shown):
            row = [
                f'<td class="l">{_e(task) if j == 0 else ""}</td>',
                f'<td class="l">{_e(method)}</td>',
            ]
            for k in ks:
                v = block[int(k)][i]
                cls = ' class="best"' if i in best[int(k)] else ""
                row.append(f"<td{cls}>{_num(v)}</td>")
            rows.append(row)
    header = ["task", "method", *[f"K={int(k)}" for k in ks]]
    table = _table(header, rows, left_cols=2, raw=True)
    if len(rows) > 60:
        return f"<details><summary>Show {len(rows)} rows</summary>{table}</details>"
    return table


def _verdict_section(
    results: pd.DataFrame,
    meta: Sequence[str],
    base: Sequence[str],
    metric: str,
    missing_baselines: Sequence[str],
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[str, pd.DataFrame]:
    parts: list[str] = []
    if missing_baselines:
        parts.append(
            f'<p class="note">Baselines named but absent from the results: '
            f"{_e(', '.join(missing_baselines))}.</p>"
        )
    if not base:
        parts.append(
            "<p>No baselines were declared (or none has results), so no method is compared "
            "with a baseline. A meta-learner is only useful if it beats simple baselines; "
            "rerun with baselines.</p>"
        )
        return "".join(parts), pd.DataFrame()
    if not meta:
        parts.append("<p>Only baselines were evaluated; there is no other method to judge.</p>")
        return "".join(parts), pd.DataFrame()
    v = verdicts(results, meta, base, metric=metric, n_boot=n_boot, level=level, seed=seed)
    if v.empty:
        parts.append("<p>No paired comparisons were possible (no shared episodes).</p>")
        return "".join(parts), v
    parts.append(
        f"<p>Each method is compared with the best baseline at that K (by mean "
        f"{_e(_metric_name(metric))} over held-out tasks) on identical episodes: difference "
        f"<em>method − baseline</em>, {level * 100:g}% bootstrap CI over tasks, and a "
        f"two-sided Wilcoxon signed-rank test on per-task differences. "
        f"“Better”/“worse” needs both the CI to exclude 0 and p &lt; 0.05.</p>"
    )
    for k in sorted(v["k"].unique()):
        items = []
        for _, row in v[v["k"] == k].iterrows():
            j = str(row["judgement"])
            cls = {"better": "better", "worse": "worse"}.get(
                j, "weak" if j.startswith("leaning") else "none"
            )
            items.append(
                f'<li class="v-{cls}"><span class="tag {cls}">{_e(j)}</span>'
                f"{_e(row['sentence'])}</li>"
            )
        parts.append(f"<h3>K = {int(k)}</h3><ul class='verdicts'>{''.join(items)}</ul>")
    return "".join(parts), v


def _model_card(
    provenance: Mapping[str, object],
    results: pd.DataFrame,
    outcome: str,
    meta: Sequence[str],
    base: Sequence[str],
    verdict_table: pd.DataFrame,
    n_boot: int,
    level: float,
) -> str:
    card = provenance.get("model_card")
    card = card if isinstance(card, Mapping) else {}
    kind = _data_kind(provenance)
    datasets = ", ".join(map(str, sorted(results["dataset"].unique(), key=str)))
    n_tasks = results.groupby("dataset")["task"].nunique()
    draws = results.groupby("dataset")["draw"].nunique()
    ks = _ks(results)
    metrics = sorted(results["metric"].unique(), key=str)

    if kind == "simulated":
        data_statement = (
            "<strong>Simulated data.</strong> These results come from simulated patients. "
            "They test the software and compare methods under known conditions; they are "
            "not evidence of clinical performance."
        )
    elif kind == "real":
        data_statement = (
            "<strong>Real data.</strong> These results come from real patient records (see "
            "source and licence below). They describe retrospective performance on the "
            "held-out tasks only and are not a prospective validation."
        )
    else:
        data_statement = (
            "<strong>Data origin not stated.</strong> The provenance does not say whether "
            "the data are simulated or real; treat the results as unverified."
        )

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
    nan_share = results.groupby("metric")["value"].apply(lambda s: float(s.isna().mean()))
    for metric, share in nan_share.items():
        if share > 0:
            limitations.append(
                f"{share:.0%} of {_metric_name(str(metric))} values are undefined (e.g. a query "
                f"set with one class, or a calibration fit without a finite solution) and are "
                f"left out of the means."
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
    if outcome == "binary":
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
        ("Metrics", ", ".join(_metric_name(str(m)) for m in metrics)),
        (
            "Uncertainty",
            f"mean over tasks (each task averaged over draws); {level * 100:g}% percentile "
            f"bootstrap over tasks, {n_boot} resamples",
        ),
    ]
    source = provenance.get("source", provenance.get("data_source"))
    licence = provenance.get("licence", provenance.get("license"))
    if source is not None:
        protocol_rows.insert(1, ("Source", str(source)))
    if licence is not None:
        protocol_rows.insert(2, ("Licence", str(licence)))

    parts = [
        f'<p class="note">{data_statement}</p>',
        f"<h3>Intended use</h3><p>{_e(intended)}</p>",
        f"<h3>Out of scope</h3><p>{_e(out_of_scope)}</p>",
        "<h3>Data and evaluation protocol</h3>",
        "<p>For each held-out task and support size K, a random support set of K "
        "labelled examples holding both classes is drawn, each method adapts on it, and the rest of the task "
        "(the query set) is scored. All methods see identical episodes.</p>",
        _table(["item", "value"], protocol_rows, left_cols=2),
        "<h3>Limitations</h3><ul>" + "".join(f"<li>{_e(x)}</li>" for x in limitations) + "</ul>",
    ]
    ethics = card.get("ethical_considerations")
    if ethics:
        parts.append(f"<h3>Ethical considerations</h3><p>{_e(ethics)}</p>")
    return "".join(parts)


def _provenance_section(provenance: Mapping[str, object]) -> str:
    if not provenance:
        return "<p>No provenance was recorded. Results cannot be traced to data or code.</p>"
    rows = [(k, v) for k, v in _flatten(provenance) if not k.startswith("model_card")]
    table = _table(["key", "value"], rows, left_cols=2)
    raw = json.dumps(provenance, indent=2, sort_keys=True, default=str)
    return f"{table}<details><summary>Raw provenance (JSON)</summary><pre>{_e(raw)}</pre></details>"


def _dataset_block(
    dataset: str,
    results: pd.DataFrame,
    predictions: pd.DataFrame | None,
    summary: pd.DataFrame,
    meta: Sequence[str],
    base: Sequence[str],
    missing_baselines: Sequence[str],
    reliability_ks: Sequence[int] | None,
    n_boot: int,
    level: float,
    seed: int,
    heading: bool,
) -> tuple[str, str, pd.DataFrame]:
    """Return (body HTML, headline HTML, verdict table) for one dataset."""
    metrics = set(results["metric"].unique())
    outcome = "binary" if "auroc" in metrics or "rmse" not in metrics else "numeric"
    primary = "auroc" if outcome == "binary" else "rmse"
    if primary not in metrics:
        primary = sorted(metrics, key=str)[0]
    order = [*meta, *base]
    colors = plots.method_colors(order)
    ks = _ks(results)
    label = _metric_name(primary)
    anchor = "ds-" + "".join(ch if ch.isalnum() else "-" for ch in str(dataset))
    parts: list[str] = []
    if heading:
        parts.append(f'<h2 id="{_e(anchor)}">Dataset: {_e(dataset)}</h2>')

    # Overview table and headline.
    n_tasks = results["task"].nunique()
    parts.append(f"<h2 id='summary-{_e(anchor)}'>Summary</h2>")
    parts.append(
        f"<p>{len(order)} method(s) on {n_tasks} held-out task(s) of <strong>{_e(dataset)}"
        f"</strong>, K = {_e(', '.join(map(str, ks)))}, "
        f"{results['draw'].nunique()} draw(s) per task and K. Table: mean {_e(label)} over "
        f"held-out tasks with {level * 100:g}% bootstrap CI; best per K in bold.</p>"
    )
    parts.append(_summary_table(summary, primary, order))

    # Verdicts (computed here so the headline can quote the largest K).
    verdict_html, vt = _verdict_section(
        results, meta, base, primary, missing_baselines, n_boot, level, seed
    )
    headline = ""
    if not vt.empty:
        k_max = int(vt["k"].max())
        sentences = vt.loc[vt["k"] == k_max, "sentence"]
        headline = "".join(f"<li>{_e(s)}</li>" for s in sentences)

    # K-shot curves.
    parts.append(f"<h2 id='curves-{_e(anchor)}'>K-shot curves</h2>")
    parts.append(
        _img(
            plots.kshot_curve_png(
                summary, primary, methods=order, baselines=base, colors=colors,
                title=f"{label} vs K on held-out tasks ({dataset})",
            ),
            f"{label} versus K",
        )
    )  # fmt: skip
    parts.append(
        f'<p class="caption">Mean over held-out tasks; shaded band: {level * 100:g}% bootstrap '
        f"CI over tasks. Dashed lines are baselines.</p>"
    )

    def panels_img(wanted: Sequence[str], alt: str) -> str | None:
        """K-shot panels of the ``wanted`` metrics present here (None if there are none)."""
        present = tuple(m for m in wanted if m in metrics)
        if not present:
            return None
        png = plots.kshot_panels_png(summary, present, methods=order, baselines=base, colors=colors)
        return _img(png, alt)

    secondary = panels_img(
        _BINARY_PANELS if outcome == "binary" else _NUMERIC_PANELS, "secondary metrics versus K"
    )
    if secondary is not None:
        parts.append(secondary)
    if outcome == "binary":
        calib = panels_img(_CALIBRATION_PANELS, "calibration slope and intercept versus K")
        if calib is not None:
            parts.append(calib)
            parts.append(
                '<p class="caption">Calibration slope (ideal 1; below 1 means predictions are '
                "too extreme) and calibration-in-the-large intercept (ideal 0; below 0 means "
                "risks are over-estimated), from logistic recalibration per episode.</p>"
            )

    # Reliability diagrams.
    title = "Reliability diagrams" if outcome == "binary" else "Predicted vs observed"
    parts.append(f"<h2 id='reliability-{_e(anchor)}'>{title}</h2>")
    preds = None
    if predictions is not None and "dataset" in predictions.columns:
        preds = predictions[predictions["dataset"] == dataset]
    elif predictions is not None:
        preds = predictions
    if preds is None or preds.empty:
        parts.append("<p>No query-set predictions were provided.</p>")
    else:
        pred_ks = sorted(int(k) for k in preds["k"].unique())
        if reliability_ks is None:
            show = sorted({pred_ks[0], pred_ks[-1]})
        else:
            show = [int(k) for k in reliability_ks if int(k) in pred_ks]
        pred_methods = [m for m in order if m in set(preds["method"].astype(str))]
        fig_fn = plots.reliability_png if outcome == "binary" else plots.predicted_vs_observed_png
        for k in show:
            parts.append(_img(fig_fn(preds, k, methods=pred_methods, colors=colors), f"K={k}"))
        if not show:
            parts.append("<p>None of the requested K values has predictions.</p>")

    # Verdicts.
    parts.append(f"<h2 id='verdicts-{_e(anchor)}'>Verdicts against the best baseline</h2>")
    parts.append(verdict_html)
    if primary == "auroc" and "brier" in metrics and meta and base:
        # adapting can fix calibration without changing discrimination: judge both
        parts.append("<h3>Calibration (Brier score)</h3>")
        parts.append(_verdict_section(results, meta, base, "brier", (), n_boot, level, seed)[0])

    # Per-task table.
    parts.append(f"<h2 id='tasks-{_e(anchor)}'>Per-task {_e(label)}</h2>")
    parts.append(
        f"<p>Mean {_e(label)} over draws for each held-out task; best method per task and K "
        f"in bold. Large spread between tasks is why intervals are taken over tasks.</p>"
    )
    parts.append(_per_task_table(results, primary, order))
    return "".join(parts), headline, vt


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
) -> str:
    """Build the report as an HTML string (see :func:`write_report` for the parameters)."""
    _check_inputs(results, predictions)
    provenance = dict(provenance or {})
    baselines = list(baselines)
    meta, base = _order_methods(results, methods, baselines)
    missing_baselines = [b for b in baselines if b not in set(results["method"].astype(str))]
    if methods is not None:
        absent = [m for m in methods if m not in set(results["method"].astype(str))]
        if absent:
            raise MetamedValueError(
                f"methods {absent} have no rows in results; methods present: "
                f"{sorted(map(str, results['method'].unique()))}. Fix the names or drop them."
            )
    summary_all = summarise(results, n_boot=n_boot, level=level, seed=seed)
    datasets = sorted(results["dataset"].unique(), key=str)
    several = len(datasets) > 1
    bodies, headlines, verdict_tables = [], [], []
    for dataset in datasets:
        body, headline, vt = _dataset_block(
            str(dataset),
            results[results["dataset"] == dataset],
            predictions,
            summary_all[summary_all["dataset"] == dataset],
            meta,
            base,
            missing_baselines,
            reliability_ks,
            n_boot,
            level,
            seed,
            heading=several,
        )
        bodies.append(body)
        if headline:
            prefix = f"<li><strong>{_e(dataset)}</strong><ul>" if several else ""
            suffix = "</ul></li>" if several else ""
            headlines.append(prefix + headline + suffix)
        verdict_tables.append(vt)
    verdict_all = pd.concat(verdict_tables, ignore_index=True) if verdict_tables else pd.DataFrame()

    metrics = set(results["metric"].unique())
    outcome = "binary" if "auroc" in metrics or "rmse" not in metrics else "numeric"
    kind = _data_kind(provenance)
    badge = {
        "simulated": '<span class="badge sim">simulated data</span>',
        "real": '<span class="badge real">real data</span>',
        "unknown": '<span class="badge unknown">data origin not stated</span>',
    }[kind]
    when = provenance.get("timestamp") or _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds"
    )
    version = provenance.get("metamed_version", "")
    subtitle = f"Dataset: {', '.join(map(str, datasets))} · generated {when}"
    if version:
        subtitle += f" · metamed {version}"
    headline_html = (
        "<h2 id='key-findings'>Key findings</h2><p>Each method against the best baseline "
        f"at the largest K:</p><ul class='verdicts'>{''.join(headlines)}</ul>"
        if headlines
        else ""
    )
    toc = (
        '<nav class="toc"><a href="#top">Top</a><a href="#model-card">Model card</a>'
        '<a href="#provenance">Provenance</a></nav>'
    )
    doc = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main id='top'>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{badge}{_e(subtitle)}</p>',
        toc,
        headline_html,
        *bodies,
        '<h2 id="model-card">Model card</h2>',
        _model_card(provenance, results, outcome, meta, base, verdict_all, n_boot, level),
        '<h2 id="provenance">Provenance</h2>',
        _provenance_section(provenance),
        "<footer>Generated by metamed. Every number in this report is derived from the tidy "
        "results table saved with it.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(doc)


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
        Query-set predictions (``method, dataset, task, k, draw, y_true, y_prob``);
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
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
