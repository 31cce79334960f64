"""The imaging suite at toy size: run folder, page and the command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metamed.cli import app
from metamed.data.registry import get_source
from metamed.runs.imaging import run_imaging_suite, tiny_imaging_suite


def _loader(folder: Path):
    spec = get_source("medmnist")

    def load(sets, corruptions):
        options = spec.resolve_options({"sets": sets, "corruptions": corruptions})
        return spec.loader(folder, **options)

    return load


def test_tiny_suite_writes_its_run_folder_and_page(tiny_medmnist: Path, tmp_path: Path) -> None:
    suite = tiny_imaging_suite()
    outputs = run_imaging_suite(suite, _loader(tiny_medmnist), tmp_path / "run", command="CMD")
    names = {p.name for p in outputs.out_dir.iterdir()}
    assert {"results.csv", "summary.csv", "paired.csv", "config.json", "imaging.md"} <= names
    results = pd.read_csv(outputs.out_dir / "results.csv")
    # Two held-out sets and one held-out corruption of both sets: four held-out tasks.
    assert results.groupby(["setting", "task"]).ngroups == 4
    assert set(results["method"]) == set(suite.methods)
    assert len(results) == 4 * len(suite.methods) * 2 * 2 * 2  # tasks, methods, K, draws, metrics
    page = outputs.page
    assert "Regenerate: `CMD`" in page and "modified copy" in page
    assert "0.901" in page and "FHIST" in page and "## Which wins" in page
    paired = pd.read_csv(outputs.out_dir / "paired.csv")
    assert set(paired["method"]) == {"fomaml", "anil", "protonet"}
    assert set(paired["baseline"]) <= {"linear-probe", "support-only"}


def test_cli_refuses_an_unknown_method_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "imaging", "--methods", "fomaml,anill",
              "--out", str(tmp_path / "x")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Did you mean 'anil'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_cli_runs_the_tiny_suite_on_the_real_sets(data_dir: Path, need_dataset, tmp_path) -> None:
    """The CI run of the suite: `metamed benchmark --suite imaging-tiny` end to end."""
    need_dataset("medmnist-subset")
    page = tmp_path / "imaging.md"
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "imaging-tiny", "--data-dir", str(data_dir),
              "--methods", "anil,linear-probe", "--shots", "1", "--draws", "2",
              "--out", str(tmp_path / "run"), "--page", str(page), "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "metamed benchmark --suite imaging-tiny --methods anil,linear-probe" in text
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert set(summary["task"]) == {
        "breastmnist", "pneumoniamnist", "breastmnist/blur", "pneumoniamnist/blur",
    }  # fmt: skip
    auroc = summary[summary["metric"] == "auroc"]["mean"]
    assert auroc.between(0, 1).all()


@pytest.mark.parametrize("flag", [["--dataset", "synthetic"], ["--config", "x.toml"]])
def test_cli_imaging_suite_chooses_its_own_data(flag, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "imaging", *flag, "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "chooses its own data" in result.output


def test_a_suite_of_baselines_only_has_no_pairs(tiny_medmnist: Path, tmp_path: Path) -> None:
    suite = tiny_imaging_suite()
    only = {k: v for k, v in suite.methods.items() if k in suite.baselines}
    outputs = run_imaging_suite(
        replace(suite, methods=only, test_corruptions=()), _loader(tiny_medmnist), tmp_path / "r"
    )
    assert outputs.paired.empty
    assert "no meta-learner beats the best baseline" in outputs.page
