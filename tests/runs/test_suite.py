"""Benchmark suites: the shipped rare-conditions suite parses, bad suites are refused in
one line before any work, and a tiny suite on real data writes a page whose every number
comes from its run folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from metamed.errors import MetamedError
from metamed.evaluation.statistics import summarise
from metamed.runs.suite import SUITES, read_suite, run_suite

TINY = """
title = "Tiny rare-conditions suite"
goal_k = 5
shots = [5, 10]
draws = 2
seed = 0

[[methods]]
name = "metapred"
label = "metapred"  # a short legend entry for the report's plots
params = { hidden_sizes = [8], meta_iterations = 6, meta_batch_size = 2, k_support = 5, n_query = 8, eval_every = 3, n_sources = 2 }

[[methods]]
name = "pooled"
label = "pooled"
params = { hidden_sizes = [8], max_epochs = 2 }

[[methods]]
name = "local-logreg"

[[datasets]]
title = "SUPPORT2, in-hospital death"
dataset = "support2"
n_common = 900
"""


def test_the_shipped_suite_names_its_rule_per_dataset() -> None:
    assert "rare-conditions" in SUITES
    suite = read_suite("rare-conditions")
    by_name = {entry.folder: entry for entry in suite.datasets}
    assert set(by_name) == {"diabetes-130", "support2", "eicu-demo-diagnoses"}
    for entry in suite.datasets:
        assert entry.spec.split == "rare"
        assert entry.spec.rare is not None
        assert "metapred" in entry.spec.method_ids
        assert {"pooled", "pooled-finetune", "local-logreg"} <= set(entry.spec.baselines)
    assert by_name["diabetes-130"].spec.rare.n_common == 200
    assert by_name["diabetes-130"].spec.shots == (5, 10, 20, 50)
    assert by_name["eicu-demo-diagnoses"].spec.shots == (5, 10, 20)
    assert suite.goal_k == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rare-condition", "Unknown suite 'rare-condition'. Did you mean 'rare-conditions'"),
        (TINY.replace("n_common = 900", "n_comon = 900"), "unknown key 'n_comon'"),
        (TINY.replace("n_common = 900", ""), "needs dataset and n_common"),
        (TINY.replace('name = "pooled"', 'name = "poled"'), "poled"),
        (
            TINY.replace("n_common = 900", "n_common = 0"),
            "n_common must be a positive whole number",
        ),
    ],
)
def test_a_bad_suite_is_one_clear_error(text: str, message: str, tmp_path: Path) -> None:
    if "\n" in text:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        text = str(path)
    with pytest.raises(MetamedError, match=message):
        read_suite(text)


def test_an_unknown_dataset_option_stops_the_suite_before_any_run(
    tmp_path: Path, data_dir: Path
) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(
        TINY.replace('dataset = "support2"', 'dataset = "support2"\noptions = { task = "dzclas" }')
    )
    with pytest.raises(MetamedError, match="dzclas"):
        run_suite(read_suite(path), tmp_path / "out", data_dir=data_dir)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_tiny_suite_writes_a_page_from_its_run_folders(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    page = tmp_path / "page.md"
    outputs = run_suite(
        read_suite(path),
        tmp_path / "out",
        data_dir=data_dir,
        page=page,
        command="metamed benchmark --suite tiny.toml",
    )
    text = page.read_text()
    assert text == (tmp_path / "out" / "tiny.md").read_text()
    assert "metamed benchmark --suite tiny.toml" in text
    assert "## SUPPORT2, in-hospital death" in text
    assert "3 meta-train, 1 meta-val, 4 rare meta-test, 0 skipped" in text
    assert "Time:" in text and "MiB" in text
    results = pd.read_parquet(tmp_path / "out" / "support2" / "results.parquet")
    assert set(results["task"]) == {"Cirrhosis", "Colon Cancer", "Coma", "MOSF w/Malig"}
    summary = summarise(results)
    row = summary[
        (summary.method == "metapred") & (summary.metric == "auroc") & (summary.k == 5)
    ].iloc[0]
    assert f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in text
    assert "Paired against the best baseline at each K (AUROC)" in text
    assert outputs.sections[0].split["counts"]["rare_test"] == 4


# -- the command line and the spec ---------------------------------------------------------
def _cli(*args: str):
    from typer.testing import CliRunner

    from metamed.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "rare-conditions", "--dataset", "support2"], "drop --dataset"),
        (["--page", "page.md"], "give --suite too"),
        (["--suite", "rare-condition"], "Did you mean 'rare-conditions'"),
        (["--dataset", "support2", "--split", "rare"], "needs the rare-conditions rule"),
        (["--dataset", "support2", "--n-common", "900"], 'applies to split = "rare" only'),
    ],
)
def test_suite_and_rare_flags_refuse_bad_use_in_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = _cli("benchmark", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_spec_with_the_rare_rule_round_trips() -> None:
    from metamed.evaluation.spec import BenchmarkSpec, DataSpec, MethodSpec
    from metamed.tasks import RareRule

    spec = BenchmarkSpec(
        DataSpec(dataset="support2"),
        (MethodSpec("pooled"),),
        split="rare",
        rare=RareRule(n_common=900, min_query=10),
    )
    again = BenchmarkSpec.from_dict(spec.to_dict())
    assert again == spec and again.rare == RareRule(n_common=900, min_query=10)
    with pytest.raises(MetamedError, match="unknown key 'n_comon'"):
        BenchmarkSpec.from_dict({**spec.to_dict(), "rare": {"n_comon": 900}})
