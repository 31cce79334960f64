"""HTML report: sections present, self-contained, escaped, robust to one method and NaN metrics."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedValueError
from metamed.evaluation.metrics import binary_metrics, numeric_metrics
from metamed.evaluation.statistics import summarise
from metamed.report import (
    kshot_curve_svg,
    kshot_panels_svg,
    predicted_vs_observed_svg,
    reliability_svg,
    render_report,
    write_report,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL_TASK = "<script>alert('x')</script>"


def synth(
    methods: dict[str, float],
    *,
    tasks: tuple[str, ...] = ("site A", "site B", "site C"),
    ks: tuple[int, ...] = (2, 10),
    n_draws: int = 2,
    n_query: int = 40,
    numeric: bool = False,
    seed: int = 0,
    dataset: str = "sim",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Small tidy results + predictions; each method's skill scales the signal it sees."""
    rng = np.random.default_rng(seed)
    res, preds = [], []
    for task in tasks:
        for k in ks:
            for draw in range(n_draws):
                x = rng.normal(size=n_query)
                if numeric:
                    y = 100 + 20 * x + rng.normal(0, 10, n_query)
                else:
                    y = (rng.random(n_query) < 1 / (1 + np.exp(-1.5 * x))).astype(float)
                    y[:2] = [0, 1]  # both classes in every query set
                for method, skill in methods.items():
                    noise = rng.normal(0, 1, n_query) * (1.5 - skill)
                    if numeric:
                        p = 100 + 20 * skill * x + 10 * noise
                        scores = numeric_metrics(y, p)
                    else:
                        p = 1 / (1 + np.exp(-(1.5 * skill * x + noise)))
                        scores = binary_metrics(y, p)
                    res += [(method, dataset, task, k, draw, m, v) for m, v in scores.items()]
                    preds += [
                        (method, dataset, task, k, draw, a, b) for a, b in zip(y, p, strict=True)
                    ]
    results = pd.DataFrame(
        res, columns=["method", "dataset", "task", "k", "draw", "metric", "value"]
    )
    predictions = pd.DataFrame(
        preds, columns=["method", "dataset", "task", "k", "draw", "y_true", "y_pred"]
    )
    return results, predictions


PROVENANCE = {
    "dataset": "sim",
    "simulated": True,
    "source": "metamed built-in simulator",
    "checksums": {"cohort.parquet": "sha256:0123abcd"},
    "config": {"inner_lr": 0.1, "shots": [2, 10]},
    "seeds": [0, 1],
    "versions": {"numpy": np.__version__},
    "metamed_version": "0.1.0",
    "command": "metamed evaluate --dataset sim",
    "timestamp": "2026-01-01T00:00:00+00:00",
}


@pytest.fixture(scope="module")
def binary_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synth({"maml": 1.2, "pooled": 0.8, "local": 0.4})


def _images(text: str) -> list[ET.Element]:
    """Every figure of a report, parsed (it must be well-formed SVG)."""
    found = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)
    return [ET.fromstring(base64.b64decode(b).decode("utf-8")) for b in found]


def test_report_has_expected_sections_and_valid_images(
    binary_data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    results, predictions = binary_data
    out = write_report(
        results, predictions, PROVENANCE, tmp_path / "sub" / "report.html",
        title="Few-shot test", baselines=["pooled", "local"], n_boot=200,
    )  # fmt: skip
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for section in (
        "Few-shot test",
        "Summary",
        "K-shot curves",
        "Reliability diagrams",
        "Verdicts against the best baseline",
        "Per-task AUROC",
        "Model card",
        "Intended use",
        "Limitations",
        "Provenance",
    ):
        assert section in text, section
    # Verdict sentence for the meta-learner against the best baseline at each K.
    assert "K=2: maml vs pooled:" in text and "K=10: maml vs pooled:" in text
    assert "Simulated data." in text and "simulated data</span>" in text
    # Provenance details are shown.
    for item in ("sha256:0123abcd", "config.inner_lr", "metamed evaluate --dataset sim", "site B"):
        assert item in text, item
    images = _images(text)
    # AUROC curve, AUPRC/Brier/ECE panels, calibration panels, reliability at K=2 and K=10.
    assert len(images) == 5
    assert all(img.tag == f"{SVG}svg" and len(img.findall(f".//{SVG}polyline")) >= 3 for img in images)


def test_report_is_self_contained(
    binary_data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    results, predictions = binary_data
    prov = {**PROVENANCE, "source": "https://example.org/data"}  # a URL as text is fine
    text = render_report(
        results, predictions, prov, baselines=["pooled"], n_boot=100, reliability_ks=[10]
    )
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text.lower() and "@import" not in text.lower()
    assert "url(" not in text.lower()
    assert "<script" not in text.lower()


def test_text_is_html_escaped(tmp_path: Path) -> None:
    # Every name that comes from data (dataset, method, task, provenance, title) holds
    # markup; the page must show it as text, never as tags.
    results, predictions = synth(
        {"maml & co": 1.2, "pooled": 0.8},
        tasks=(EVIL_TASK, "site <b>2</b>", "site 3"),
        dataset='heart "<u>x</u>"',
    )
    prov = {**PROVENANCE, "note": "<img src=x onerror=alert(1)>"}
    out = write_report(
        results, predictions, prov, tmp_path / "r.html", title="<i>T</i>",
        baselines=["pooled"], n_boot=100, reliability_ks=[2],
    )  # fmt: skip
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(" in text
    assert "<b>2</b>" not in text and "site &lt;b&gt;2&lt;/b&gt;" in text
    assert "<u>x</u>" not in text and "&lt;u&gt;x&lt;/u&gt;" in text
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<i>T</i>" not in text and "&lt;i&gt;T&lt;/i&gt;" in text
    assert "maml &amp; co" in text and "maml & co" not in text


def test_one_method_only_and_no_predictions(tmp_path: Path) -> None:
    results, _ = synth({"maml": 1.0}, tasks=("s1", "s2"))
    out = write_report(results, None, None, tmp_path / "one.html", n_boot=100)
    text = out.read_text(encoding="utf-8")
    assert "No baselines were declared" in text
    assert "No query-set predictions were provided" in text
    assert "No provenance was recorded" in text
    assert "Data origin not stated" in text
    assert len(_images(text)) == 3  # curve + two panel figures, no reliability


def test_nan_metrics_are_reported_not_fatal(
    binary_data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    results, predictions = binary_data
    results = results.copy()
    # The local baseline's AUROC undefined everywhere; some slopes undefined.
    results.loc[(results["method"] == "local") & (results["metric"] == "auroc"), "value"] = np.nan
    slope_rows = results.index[results["metric"] == "calibration_slope"][::3]
    results.loc[slope_rows, "value"] = np.nan
    predictions = predictions.copy()
    predictions.loc[predictions.index[:5], "y_pred"] = np.nan
    text = render_report(
        results, predictions, PROVENANCE, baselines=["pooled", "local"], n_boot=100,
        reliability_ks=[2],
    )  # fmt: skip
    assert "n/a" in text
    assert "of AUROC values are undefined" in text
    assert "of calibration slope values are undefined" in text
    assert "K=10: maml vs pooled:" in text  # local cannot be the best baseline with no AUROC


def test_numeric_outcome_report(tmp_path: Path) -> None:
    results, predictions = synth({"maml": 1.2, "pooled": 0.6}, numeric=True)
    text = render_report(
        results, predictions, {"data_kind": "real"}, baselines=["pooled"], n_boot=100
    )
    assert "Per-task RMSE" in text
    assert "Predicted vs observed" in text and "Reliability diagrams" not in text
    assert "RMSE [" in text  # verdict sentence on RMSE
    assert "lower is better" in text
    assert "Real data." in text
    assert len(_images(text)) >= 3


def test_report_is_deterministic(binary_data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    results, predictions = binary_data
    kwargs = {"baselines": ["pooled"], "n_boot": 100, "reliability_ks": [10]}
    a = render_report(results, predictions, PROVENANCE, **kwargs)
    b = render_report(results, predictions, PROVENANCE, **kwargs)
    assert a == b


def test_report_input_errors(binary_data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    results, predictions = binary_data
    with pytest.raises(MetamedValueError, match="missing column"):
        render_report(results.drop(columns=["draw"]), predictions, PROVENANCE)
    with pytest.raises(MetamedValueError, match="empty"):
        render_report(results.iloc[:0], predictions, PROVENANCE)
    with pytest.raises(MetamedValueError, match="no rows in results"):
        render_report(results, predictions, PROVENANCE, methods=["mammal"])


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_figures_are_well_formed_svg_that_show_names_as_text() -> None:
    results, predictions = synth({"maml & <b>co</b>": 1.2, "pooled": 0.8})
    summary = summarise(results, n_boot=50)
    names = ["maml & <b>co</b>", "pooled"]
    figures = [
        kshot_curve_svg(summary, "auroc", methods=names, baselines=["pooled"]),
        kshot_panels_svg(summary, ["brier", "ece"], methods=names, baselines=["pooled"]),
        reliability_svg(predictions, 2, methods=names),
    ]
    for svg in figures:
        assert "maml & <b>co</b>" in _texts(svg)  # parsed back as text, not as markup
    num_res, num_pred = synth({"m": 1.0}, numeric=True, tasks=("a", "b"), ks=(5,))
    assert "m" in _texts(predicted_vs_observed_svg(num_pred, 5))
    with pytest.raises(MetamedValueError, match="summarise"):
        kshot_curve_svg(summary.drop(columns=["ci_low"]), "auroc")


def test_kshot_curve_draws_each_mean_at_its_k_and_value() -> None:
    # Two methods with known means: rising and falling.  The drawn points must keep the
    # order of K along x and the order of the values along y (SVG's y grows downwards).
    ks = [5, 10, 20, 40]
    rising, falling = [0.6, 0.7, 0.75, 0.9], [0.8, 0.7, 0.65, 0.5]
    summary = pd.DataFrame(
        [
            {"method": m, "k": k, "metric": "auroc", "mean": v, "ci_low": v - 0.05, "ci_high": v + 0.05}
            for m, values in (("up", rising), ("down", falling))
            for k, v in zip(ks, values, strict=True)
        ]
    )
    colors = {"up": "#0072B2", "down": "#D55E00"}
    svg = ET.fromstring(kshot_curve_svg(summary, "auroc", methods=["up", "down"], colors=colors))
    lines = {
        line.get("stroke"): [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        for line in svg.iter(f"{SVG}polyline")
    }
    for method, values in (("up", rising), ("down", falling)):
        points = lines[colors[method]]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        assert len(points) == len(ks) and xs == sorted(xs)
        assert np.argsort(ys).tolist() == np.argsort(values)[::-1].tolist()
    # Equal values are drawn at equal heights: both curves pass 0.7 at K=10.
    assert lines[colors["up"]][1][1] == pytest.approx(lines[colors["down"]][1][1])
    # Log-spaced K (5..40) is drawn evenly spaced: 5->10, 10->20 and 20->40 are equal steps.
    steps = np.diff([p[0] for p in lines[colors["up"]]])
    assert steps == pytest.approx([steps[0]] * 3, rel=1e-3)


# -- readable by a clinician ---------------------------------------------------------------
def test_key_findings_give_discrimination_and_calibration_in_plain_words(
    binary_data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    results, predictions = binary_data
    prov = {**PROVENANCE, "fit_seconds": {"maml": 12.3456789}}
    text = render_report(results, predictions, prov, baselines=["pooled", "local"], n_boot=200)
    findings = text[text.index('id="key-findings"') : text.index('id="summary-')]
    assert "maml (K=10): discrimination: " in findings
    assert "; calibration: " in findings
    assert "CI excludes 0" not in findings  # the old wording a clinician stumbled on
    # the provenance is folded away, and its floats are rounded
    provenance = text[text.index('id="provenance"') :]
    assert provenance.index("<details>") < provenance.index("sha256:0123abcd")
    assert "12.35" in provenance and "12.3456789</td>" not in provenance


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (
            {"metric": "brier", "judgement": "better", "difference": -0.02, "ci_low": -0.03,
             "ci_high": -0.01},
            "better calibrated than pooled, by 0.020 Brier score (95% CI 0.010 to 0.030)",
        ),
        (
            {"metric": "auroc", "judgement": "no clear difference", "difference": -0.012,
             "ci_low": -0.038, "ci_high": 0.009},
            "no evidence of a difference from pooled (AUROC -0.012, 95% CI -0.038 to +0.009)",
        ),
        (
            {"metric": "auroc", "judgement": "leaning worse", "difference": -0.023,
             "ci_low": -0.051, "ci_high": -0.003},
            "perhaps discriminates worse than pooled, by 0.023 AUROC (95% CI 0.003 to 0.051), "
            "but 4 tasks are too few to be sure",
        ),
        (
            {"metric": "brier", "judgement": "worse", "difference": 0.03, "ci_low": 0.01,
             "ci_high": 0.05},
            "less well calibrated than pooled, by 0.030 Brier score (95% CI 0.010 to 0.050)",
        ),
    ],
)  # fmt: skip
def test_plain_findings_state_the_gain_or_loss(row: dict, words: str) -> None:
    from metamed.report.verdicts import plain_finding

    assert plain_finding({**row, "baseline": "pooled", "n_tasks": 4, "k": 10}) == words


def test_many_methods_get_small_multiples(
    binary_data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    results, predictions = binary_data
    maml = results[results["method"] == "maml"]
    more = pd.concat([results, maml.assign(method="anil"), maml.assign(method="fomaml")])
    text = render_report(more, None, PROVENANCE, baselines=["pooled", "local"], n_boot=100)
    assert "one panel per method" in text
