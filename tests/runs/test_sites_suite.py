"""The sites suite: each dataset's own site split (leave-one-site-out, groups of sites, or
train on one part and test on another), skipped sites counted, the guard's record and
FLamby-style accuracy on the page; the shipped file parses, and a tiny copy of it runs
on real data (UCI Heart and the indomethacin trial, whose fourth site has 3 patients)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.errors import MetamedError
from metamed.evaluation import guard_record
from metamed.evaluation.statistics import summarise
from metamed.runs.suite import SUITES, read_suite, run_suite

TINY = """
title = "Tiny sites suite"
goal_k = 10
shots = [5, 10]
draws = 2
seed = 0
split = "sites"
sampler = "unconditioned"
recalibrate = true

[[methods]]
name = "fomaml"
label = "fomaml"
params = { hidden_sizes = [8], meta_iterations = 4, meta_batch_size = 2, k_support = 5, n_query = 8, eval_every = 2 }

[[methods]]
name = "pooled-logreg"

[[methods]]
name = "recal-intercept"

[[methods]]
name = "guard"
label = "guard-updating"
params = { adapter = "recal-intercept", reference = "pooled-logreg" }

[[datasets]]
title = "UCI Heart"
dataset = "uci-heart"
accuracy = true

[[datasets]]
title = "Indomethacin RCT"
dataset = "indo-rct"
methods = [{ name = "trial-risk" }]
"""


def test_the_shipped_sites_suite_runs_every_dataset_with_its_own_split() -> None:
    assert "sites" in SUITES
    suite = read_suite("sites")
    by_folder = {entry.folder: entry for entry in suite.datasets}
    assert set(by_folder) == {
        "uci-heart", "eicu-demo-mortality", "eicu-demo-stay", "physionet-2012",
        "iwpc-warfarin", "opt", "indo-rct",
    }  # fmt: skip
    for entry in suite.datasets:
        spec = entry.spec
        assert spec.split == "sites" and spec.sites is not None
        assert spec.sampler == "unconditioned" and spec.recalibrate
        names = {m.name for m in spec.methods}  # IWPC's fomaml is fomaml(inner_lr=0.01)
        assert {"fomaml", "guard", "mixed-intercept"} <= names
        assert {"guard", "guard-updating", "mixed-intercept"} <= set(spec.method_ids)
        assert {"recal-intercept", "recal-logistic", "model-revision"} <= set(spec.baselines)
    assert "apache-iva" in by_folder["eicu-demo-mortality"].spec.method_ids
    assert by_folder["physionet-2012"].spec.sites.part_col == "set"
    assert by_folder["iwpc-warfarin"].spec.sites.folds == 3
    assert by_folder["uci-heart"].accuracy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TINY.replace('accuracy = true', 'n_common = 50'), 'n_common belong.s. to another split'),
        (TINY.replace('split = "sites"', 'split = "site"'), "Did you mean 'sites'"),
        (TINY.replace('dataset = "uci-heart"', 'dataset = "uci-heart"\nfolds = -1'), "folds must"),
        (TINY.replace('accuracy = true', 'part_col = "set"'), "go together"),
    ],
)
def test_a_bad_sites_suite_is_one_clear_error(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MetamedError, match=message):
        read_suite(path)


def test_a_tiny_sites_suite_writes_its_page_from_the_run_folders(
    tmp_path: Path, data_dir: Path
) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    page = tmp_path / "docs" / "sites.md"
    page.parent.mkdir()
    outputs = run_suite(read_suite(path), tmp_path / "out", data_dir=data_dir, page=page)
    text = page.read_text()
    heart = pd.read_parquet(tmp_path / "out" / "uci-heart" / "results.parquet")
    assert set(heart["task"]) == {"cleveland", "hungarian", "switzerland", "va"}
    assert {"guard-updating", "pooled-logreg+recal"} <= set(heart["method"])
    assert "guard-updating+recal" not in set(heart["method"])  # a guard is not recalibrated
    # every number on the page comes from the run folder's tables
    summary = summarise(heart)
    row = summary[(summary.method == "fomaml") & (summary.metric == "brier") & (summary.k == 10)]
    row = row.iloc[0]
    assert f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in text
    decisions = pd.read_csv(tmp_path / "out" / "uci-heart" / "decisions.csv")
    record = guard_record(decisions)
    cell = record[(record.metric == "brier") & (record.k == 10)].iloc[0]
    assert f"| {cell['share_right']:.0%} | {cell['saved_vs_adapted']:+.3f}" in text
    assert "The adapt-or-not guard's record" in text
    assert "Accuracy, FLamby's way" in text
    assert "[HTML report](../out/uci-heart/report.html)" in text
    # the guard and recalibrated baselines are not judged as meta-learners
    assert "guard-updating is" not in text and "pooled-logreg+recal is" not in text
    assert "No meta-learner beats the best baseline at K=10" in text or "beats the best" in text
    # indo-rct: 4_Case (3 patients) cannot be scored at K = 10 and is counted; the
    # others (3_UK: 22 patients, just enough) are held out in turn
    indo = outputs.sections[1].split
    assert indo["counts"]["evaluated"] == 3 and indo["counts"]["skipped"] == 1
    assert list(indo["skipped"]) == ["4_Case"] and "too few patients" in indo["skipped"]["4_Case"]
    assert "3 evaluated in 3 splits, 1 not evaluated (1 too few patients)" in text
    indo_results = pd.read_parquet(tmp_path / "out" / "indo-rct" / "results.parquet")
    assert set(indo_results["task"]) == {"1_UM", "2_IU", "3_UK"}
    assert "trial-risk" in set(indo_results["method"])


def test_train_on_one_part_test_on_another_keeps_the_parts_apart() -> None:
    """PhysioNet's design on a toy cohort: meta-train on set a of the other sites, score
    the held-out site's set b rows only."""
    from metamed.data.cohort import Cohort, Schema
    from metamed.tasks import SiteRule, TaskSet, site_split

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=240),
            "site": np.repeat(["s1", "s2", "s3"], 80),
            "set": np.tile(np.repeat(["a", "b"], 40), 3),
            "y": rng.integers(0, 2, 240),
        }
    )
    schema = Schema(outcome="y", numeric=("x",), group=("site", "set"))
    taskset = TaskSet(Cohort("toy", frame, schema), "site")
    rule = SiteRule(part_col="set", train_part="a", test_part="b")
    result = site_split(taskset, rule, shots=(5, 10))
    assert [s.test for s in result.splits] == [("s1 / b",), ("s2 / b",), ("s3 / b",)]
    assert result.splits[0].train == ("s2 / a", "s3 / a")
    rows = result.taskset.rows("s1 / b")
    assert set(result.taskset.cohort.frame.iloc[rows]["set"]) == {"b"}
    with pytest.raises(MetamedError, match="no value 'c'"):
        site_split(taskset, SiteRule(part_col="set", train_part="a", test_part="c"), (5,))


def test_a_page_written_before_the_last_dataset_names_the_missing_ones() -> None:
    from metamed.report.suite_page import suite_markdown

    text = suite_markdown("Sites", "metamed benchmark --suite sites", [], pending=["OPT", "IWPC"])
    assert "**Incomplete: 2 of 2 datasets have no results on this page**" in text
    assert "`--resume` continues it): OPT; IWPC." in text
    assert "Incomplete" not in suite_markdown("Sites", "metamed benchmark --suite sites", [])


def test_train_sites_meta_trains_each_split_on_that_many_sites_nested_in_more() -> None:
    from metamed.data.cohort import Cohort, Schema
    from metamed.tasks import SiteRule, TaskSet, site_split

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=240), "site": np.repeat([f"s{i}" for i in range(8)], 30),
         "y": rng.integers(0, 2, 240)}
    )  # fmt: skip
    taskset = TaskSet(Cohort("toy", frame, Schema(outcome="y", numeric=("x",), group=("site",))), "site")
    splits = {
        n: site_split(taskset, SiteRule(train_sites=n), shots=(5,), seed=1).splits
        for n in (0, 2, 4, 7)
    }
    assert [len(s.train) for s in splits[2]] == [2] * 8 and [len(s.train) for s in splits[4]] == [4] * 8
    for few, more, every in zip(splits[2], splits[4], splits[0], strict=True):
        assert few.test == more.test == every.test
        assert set(few.train) <= set(more.train) <= set(every.train)
        assert few.test[0] not in more.train
    assert [s.train for s in splits[7]] == [s.train for s in splits[0]]  # 7 = all the others
    # different splits draw different sites (not always the first ones)
    assert len({s.train for s in splits[2]}) > 1
    with pytest.raises(MetamedError, match="leaves 7 sites to meta-train on, fewer than train_sites = 8"):
        site_split(taskset, SiteRule(train_sites=8), shots=(5,))
    assert SiteRule(train_sites=2).to_dict()["train_sites"] == 2
    assert "train_sites" not in SiteRule().to_dict()
