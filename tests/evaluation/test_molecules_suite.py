"""The molecules suite end to end on a self-made collection (the CI-sized config), and
its command line's input checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from metamed.cli import app
from metamed.data.molecules import FingerprintSettings
from metamed.evaluation.molecules import MoleculeProtocolConfig
from metamed.runs.molecules import MoleculeSuite, run_molecule_suite

from .test_molecules import tiny_tox21

runner = CliRunner()


def test_tiny_suite_writes_the_page_from_its_own_numbers(tmp_path: Path) -> None:
    cohort = tiny_tox21(tmp_path)
    suite = MoleculeSuite(
        collections=("tox21",),
        methods=("protonet", "local-knn"),
        fingerprints=FingerprintSettings(n_bits=128),
        protocol=MoleculeProtocolConfig(shots=(1, 3), draws=2, max_train_rows=None),
        overrides={"n_iterations": 3, "hidden_sizes": (8,), "embedding_dim": 4},
    )
    out = run_molecule_suite(suite, lambda c: cohort, tmp_path / "run", tmp_path / "cache")
    files = sorted(p.name for p in out.out_dir.iterdir() if not p.name.startswith("."))
    assert files == ["config.json", "molecules.md", "results.csv", "summary.csv"]
    summary = pd.read_csv(out.out_dir / "summary.csv")
    page = (out.out_dir / "molecules.md").read_text()
    knn = summary[
        (summary.method == "local-knn") & (summary.k == 3) & (summary.metric == "roc_auc")
    ]
    assert f"{knn['mean'].iloc[0] * 100:.1f} [" in page
    assert "anchor: Pre-PAR" in page and "SR-HSE, SR-MMP, SR-p53" in page
    assert "featurise (computed, now cached)" in page
    again = run_molecule_suite(
        suite, lambda c: cohort, tmp_path / "run", tmp_path / "cache", force=True
    )
    assert "featurise (from cache)" in again.page
    pd.testing.assert_frame_equal(pd.read_csv(again.out_dir / "summary.csv"), summary)


def test_suite_input_errors_exit_2_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for args, message in [
        (["--suite", "molecule"], "did you mean 'molecules'"),
        (["--suite", "molecules", "--collections", "tox22"], "Unknown collection(s) tox22"),
        (["--suite", "molecules", "--dataset", "uci-heart"], "drop --dataset"),
        (["--suite", "molecules", "--bits", "8"], "n_bits must be in"),
        (["--suite", "molecules", "--methods", "protonett"], "protonet"),
    ]:
        result = runner.invoke(app, ["benchmark", *args, "--out", str(out)])
        assert result.exit_code == 2, (args, result.output)
        assert message.lower() in result.output.lower(), (args, result.output)
        assert "Traceback" not in result.output
    assert not out.exists()
