"""Verdict wording, and reports and statistics taking metric facts from the registry alone."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pandas as pd
import pytest

from metamed.errors import UnknownNameError
from metamed.evaluation import metrics as M
from metamed.evaluation.statistics import best_baseline, verdicts
from metamed.report import render_report, summary_markdown
from metamed.report.verdicts import format_value, verdict_sentence, verdict_sentences


def paired_results(diffs: list[float], metric: str = "auroc", base: float = 0.7) -> pd.DataFrame:
    """Method 'm' scores base + diffs[t] on task t (two identical draws); 'ref' scores base."""
    rows = []
    for t, d in enumerate(diffs):
        for draw in range(2):
            rows.append(("m", "toy", f"site{t}", 10, draw, metric, base + d))
            rows.append(("ref", "toy", f"site{t}", 10, draw, metric, base))
    return pd.DataFrame(rows, columns=["method", "dataset", "task", "k", "draw", "metric", "value"])


def sentence_of(results: pd.DataFrame, metric: str = "auroc") -> str:
    table = verdict_sentences(verdicts(results, ["m"], ["ref"], metric=metric, n_boot=300))
    return str(table["sentence"].iloc[0])


def test_sentence_for_a_clear_win_on_many_tasks() -> None:
    sentence = sentence_of(paired_results([0.05 + 0.001 * t for t in range(12)]))
    assert sentence.startswith("K=10: m vs ref: +0.05")
    assert "AUROC [" in sentence and "(significant)" in sentence
    assert "m is better than ref" in sentence and "12 tasks" in sentence
    assert "few tasks" not in sentence and "lower is better" not in sentence


def test_sentence_for_few_tasks_lower_is_better_and_weak_evidence() -> None:
    # Brier 0.03 lower on 4 tasks: better by direction, CI excludes 0, test cannot be
    # significant with 4 tasks.
    sentence = sentence_of(paired_results([-0.03, -0.031, -0.029, -0.032], "brier"), "brier")
    assert "Brier score [" in sentence and "(not significant)" in sentence
    assert "m may be better than ref, but the evidence is weak" in sentence
    assert "4 tasks; lower is better; few tasks, so the CI is coarse." in sentence


def test_sentence_for_no_difference_and_ideal_value() -> None:
    sentence = sentence_of(
        paired_results([0.02, -0.02, 0.01, -0.01], "calibration_slope"), "calibration_slope"
    )
    assert "no clear difference (95% CI spans 0)" in sentence and "ideal 1" in sentence


def test_sentence_when_the_test_and_the_mean_disagree() -> None:
    # 30 tasks a little better, 2 much worse: the signed-rank test is significant, the
    # mean difference's CI spans 0.  The sentence must not read "significant — no
    # clear difference" without saying which claim is which.
    sentence = sentence_of(paired_results([0.01] * 30 + [-0.2, -0.2]))
    assert "(significant)" in sentence
    assert "no clear difference in the mean (95% CI spans 0)" in sentence
    assert "signed-rank test finds most tasks shifted one way" in sentence


def test_sentence_fields_and_tiny_values() -> None:
    row = {
        "k": 5, "method": "a", "baseline": "b", "metric": "auroc", "difference": 4e-4,
        "ci_low": -1e-4, "ci_high": 3e-4, "p_value": float("nan"), "n_tasks": 1,
        "judgement": "undetermined",
    }  # fmt: skip
    sentence = verdict_sentence(row)
    assert "+4.0e-04 AUROC [-1.0e-04, +3.0e-04], p = n/a" in sentence
    assert "1 task;" in sentence and "undetermined" in sentence
    assert format_value(float("inf")) == "n/a"


@pytest.fixture
def relabelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry where Brier has another label and AUROC counts lower as better."""
    changed = dict(M.METRICS)
    changed["brier"] = dataclasses.replace(changed["brier"], label="Brier-under-test")
    changed["auroc"] = dataclasses.replace(
        changed["auroc"], label="AUC-under-test", direction="lower"
    )
    monkeypatch.setattr(M, "METRICS", MappingProxyType(changed))


def _two_metric_results() -> pd.DataFrame:
    auroc = paired_results([0.05, 0.04, 0.06, 0.05], "auroc")
    brier = paired_results([-0.02, -0.01, -0.03, -0.02], "brier", base=0.2)
    return pd.concat([auroc, brier], ignore_index=True)


@pytest.mark.usefixtures("relabelled")
def test_statistics_and_reports_read_labels_and_directions_from_the_registry() -> None:
    results = _two_metric_results()
    # With lower AUROC "better", the baseline scoring less wins.
    assert best_baseline(results, ["m", "ref"], "auroc", 10) == "ref"
    markdown = summary_markdown(results, baselines=["ref"])
    assert "**AUC-under-test**" in markdown and "**Brier-under-test**" in markdown
    assert "AUROC" not in markdown and "Brier score" not in markdown
    assert "m is worse than ref" in markdown or "may be worse" in markdown
    html = render_report(results, None, {}, baselines=["ref"], n_boot=100)
    assert "Per-task AUC-under-test" in html and "Brier-under-test" in html
    assert "Brier score" not in html


def test_unknown_metric_in_results_is_named() -> None:
    results = paired_results([0.01, 0.02]).assign(metric="aucroc")
    with pytest.raises(UnknownNameError, match="Did you mean .auroc."):
        summary_markdown(results, baselines=["ref"])
