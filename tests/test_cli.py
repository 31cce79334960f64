"""The `metamed` command: results on disk, and one clear line (exit 2) for every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from metamed import cli
from metamed.cli import app
from metamed.data import DATASETS

runner = CliRunner()
FAST = ["--methods", "local-logreg,local-gbm", "--draws", "2"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_clean_error(result, *fragments: str) -> None:
    """Exit code 2, the message present, and no traceback."""
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in text, text


def hospital_table(tmp_path, n_sites: int = 4, n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_sites):
        x = rng.normal(size=(n, 3))
        y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - x[:, 1])))).astype(int)
        y[:2] = [0, 1]
        frame = pd.DataFrame({"age": 60 + 10 * x[:, 0], "lactate": 2 + x[:, 1], "sofa": x[:, 2]})
        frame["ward"] = rng.choice(["icu", "medical"], n)
        frame["hospital"] = f"h{s}"
        frame["died"] = y
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    path = tmp_path / "patients.csv"
    table.to_csv(path, index=False)
    return path, table


def benchmark_table(path, out, shots: str):
    """``metamed benchmark`` of the fast methods on a table written by :func:`hospital_table`."""
    return invoke(
        "benchmark",
        "--table",
        str(path),
        "--task-col",
        "hospital",
        "--outcome-col",
        "died",
        "--shots",
        shots,
        "--out",
        str(out),
        *FAST,
    )


def test_benchmark_on_own_table_writes_everything(tmp_path):
    path, _ = hospital_table(tmp_path)
    out = tmp_path / "run"
    result = benchmark_table(path, out, "4,8")
    assert result.exit_code == 0, result.output
    for name in (
        "results.csv",
        "results.parquet",
        "predictions.parquet",
        "config.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == ["method", "dataset", "task", "k", "draw", "metric", "value"]
    # one row per method x held-out site x K x draw x metric
    per_cell = results.groupby(["method", "task", "k", "draw", "metric"]).size()
    assert (per_cell == 1).all()
    assert set(results["task"]) == {"h0", "h1", "h2", "h3"}
    assert set(results["k"]) == {4, 8}
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["protocol"]["seed"] == 0
    assert "versions" in config and "torch" in config["versions"]
    assert "ward" in result.output  # the inferred schema is shown


def test_unknown_method_and_dataset_get_did_you_mean(tmp_path):
    assert_clean_error(
        invoke(
            "benchmark",
            "--dataset",
            "synthetic",
            "--methods",
            "mamll",
            "--out",
            str(tmp_path / "x"),
        ),
        "maml",
    )
    assert_clean_error(
        invoke("benchmark", "--dataset", "uci-hart", "--out", str(tmp_path / "x"), *FAST),
        "uci-heart",
    )
    assert not (tmp_path / "x").exists()


def test_missing_data_folder_names_fetch_command(tmp_path):
    result = invoke("benchmark", "--dataset", "uci-heart", "--data-dir", str(tmp_path), *FAST)
    assert_clean_error(result, "metamed data fetch uci-heart")


def test_k_too_large_writes_nothing(tmp_path):
    path, _ = hospital_table(tmp_path)
    out = tmp_path / "run"
    result = benchmark_table(path, out, "4,500")
    assert_clean_error(result, "K=500")
    assert not out.exists()
    assert not list(tmp_path.glob(".run-*"))  # no staging folder left behind


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda t: t.assign(lactate=t["lactate"].where(t.index != 5, np.inf)), "infinite"),
        (lambda t: t.assign(died=t["died"].astype(float).where(t.index != 3, np.nan)), "missing"),
        (lambda t: t.assign(died=t["died"].where(t["hospital"] != "h2", 0)), "h2"),
        (
            lambda t: t.assign(lactate=t["lactate"].astype(str).where(t.index != 7, "high")),
            "lactate",
        ),
    ],
    ids=["inf-feature", "nan-outcome", "one-class-site", "text-in-numeric"],
)
def test_bad_tables_get_one_clear_line(tmp_path, corrupt, fragment):
    path, table = hospital_table(tmp_path)
    corrupt(table).to_csv(path, index=False)
    out = tmp_path / "run"
    result = benchmark_table(path, out, "4")
    assert_clean_error(result, fragment)
    assert not out.exists()


def test_bad_shots_and_unknown_columns(tmp_path):
    path, _ = hospital_table(tmp_path)
    base = [
        "benchmark",
        "--table",
        str(path),
        "--task-col",
        "hospital",
        "--out",
        str(tmp_path / "o"),
        *FAST,
    ]
    assert_clean_error(invoke(*base, "--outcome-col", "died", "--shots", "five"), "--shots")
    assert_clean_error(invoke(*base, "--outcome-col", "dead"), "died")
    assert_clean_error(invoke(*base, "--outcome-col", "died", "--drop-cols", "agee"), "age")


def test_datasets_lists_known_datasets(tmp_path):
    result = invoke("datasets", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "uci-heart" in result.output and "synthetic" in result.output
    assert "CC BY" in result.output


@pytest.mark.parametrize("width", [80, 120])
def test_datasets_readable_in_a_narrow_terminal(tmp_path, monkeypatch, width):
    """Every column whole at 80 columns: nothing cut to '…', each row's status readable."""
    monkeypatch.setattr(cli, "console", Console(width=width))
    result = invoke("datasets", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    assert "…" not in result.output
    rows = {words[0]: words for line in lines if (words := line.split()) and words[0] in DATASETS}
    assert set(rows) == set(DATASETS)
    assert rows["synthetic"][-2:] == ["built-in", "yes"]
    assert rows["uci-heart"][1] == f"v{DATASETS['uci-heart'].version}"
    assert rows["uci-heart"][-2:] == ["no", "yes"]  # nothing in tmp_path; loader exists
    assert rows["tcga-brca"][-3:] == ["no", "not", "yet"]


def test_datasets_name_shows_the_spec(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=80))
    result = invoke("datasets", "uci-heart", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert max(len(line.rstrip()) for line in result.output.splitlines()) <= 80
    text = " ".join(result.output.split())
    for fragment in ("Heart Disease [dataset]", "sites", "processed.va.data", "CC BY 4.0"):
        assert fragment in text, fragment  # spec text printed as-is, never as markup
    synthetic = invoke("datasets", "synthetic")
    assert "task_kind" in synthetic.output and "condition" in synthetic.output
    assert_clean_error(invoke("datasets", "uci-hart"), "Did you mean 'uci-heart'")


def test_uci_heart_leave_one_site_out(uci_heart_dir, tmp_path):
    """The real four-hospital cohort end to end (small budget; full runs live in the README)."""
    out = tmp_path / "heart"
    result = invoke(
        "benchmark",
        "--dataset",
        "uci-heart",
        "--data-dir",
        str(uci_heart_dir.parent),
        "--methods",
        "fomaml,local-logreg",
        "--meta-iterations",
        "20",
        "--shots",
        "5,10",
        "--draws",
        "2",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    results = pd.read_csv(out / "results.csv")
    assert set(results["task"]) == {"cleveland", "hungarian", "switzerland", "va"}
    config = json.loads((out / "config.json").read_text())
    assert config["checksums"]["processed.va.data"].startswith("e7c93d8d")
    splits = config["config"]["splits"]
    assert [s["test"] for s in splits] == [["cleveland"], ["hungarian"], ["switzerland"], ["va"]]


def test_data_fetch_from_loopback_mirror(uci_heart_dir, tmp_path, serve):
    with serve(uci_heart_dir.parent) as url:
        result = invoke(
            "data",
            "fetch",
            "uci-heart",
            "--dest",
            str(tmp_path),
            "--base-url",
            f"{url}/uci-heart-disease",
        )
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    listed = invoke("datasets", "--data-dir", str(tmp_path))
    assert "uci-heart" in listed.output


def test_data_fetch_unknown_name(tmp_path):
    assert_clean_error(invoke("data", "fetch", "uci-hearts", "--dest", str(tmp_path)), "uci-heart")


def test_numeric_outcome_table(tmp_path):
    """A numeric outcome (length of stay, days) runs the same protocol with regression metrics."""
    path, table = hospital_table(tmp_path)
    rng = np.random.default_rng(1)
    table["los_days"] = 3 + 2 * table["lactate"] + rng.normal(0, 1, len(table))
    table.drop(columns="died").to_csv(path, index=False)
    out = tmp_path / "run"
    result = invoke(
        "benchmark", "--table", str(path), "--task-col", "hospital", "--outcome-col", "los_days",
        "--methods", "local-logreg,fomaml", "--meta-iterations", "20",
        "--shots", "5", "--draws", "2", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = pd.read_csv(out / "results.csv")
    assert {"rmse", "mae", "r2"} <= set(results["metric"])
    assert "auroc" not in set(results["metric"])
    # local ridge on 5 patients explains some of the variance of a strongly linear outcome
    r2 = results[(results["metric"] == "r2") & (results["method"] == "local-logreg")]["value"]
    assert r2.mean() > 0.3


def test_text_outcome_with_positive_label_and_contradictions(tmp_path):
    path, table = hospital_table(tmp_path)
    table.assign(died=table["died"].map({0: "no", 1: "yes"})).to_csv(path, index=False)
    base = ["benchmark", "--table", str(path), "--task-col", "hospital", "--outcome-col", "died"]
    fast = ["--shots", "4", "--out", str(tmp_path / "o"), *FAST]
    assert_clean_error(invoke(*base, *fast), "--positive-label yes")
    assert invoke(*base, *fast, "--positive-label", "yes").exit_code == 0
    dropped = invoke(*base, *fast, "--positive-label", "yes", "--drop-cols", "died")
    assert_clean_error(dropped, "cannot be dropped")
    assert_clean_error(invoke(*base, *fast, "--positive-label", "yes", "--seed", "-1"), "--seed")


def _table_args(path, out, *extra: str) -> list[str]:
    return [
        "benchmark", "--table", str(path), "--task-col", "hospital", "--outcome-col", "died",
        "--shots", "4", "--out", str(out), *FAST, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda t: t.assign(died_again=t["died"]), "'died_again' holds the same values"),
        (lambda t: t.assign(died=t.index % 3), "--outcome-type numeric"),
        (lambda t: t.assign(hospital=t["hospital"].where(t.index % 2 == 0, "H1")), "'H1' / 'h1'"),
        (lambda t: t.assign(age=t["age"].where(t.index != 9, 1e308)), "holds 1e+308 (row 9)"),
    ],
    ids=["outcome-copy", "class-codes", "case-only", "huge-value"],
)
def test_leaky_or_ambiguous_tables_refused_before_any_work(tmp_path, corrupt, fragment):
    path, table = hospital_table(tmp_path)
    corrupt(table).to_csv(path, index=False)
    out = tmp_path / "run"
    result = invoke(*_table_args(path, out))
    assert_clean_error(result, fragment)
    assert "RuntimeWarning" not in result.output
    assert not out.exists()


def test_repeated_outcome_header_is_refused(tmp_path):
    path, table = hospital_table(tmp_path)
    text = path.read_text().splitlines()
    # The CSV header repeats "died": pandas would read the copy as a feature "died.1".
    rows = [f"{line},{line.rsplit(',', 1)[1]}" for line in text]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert_clean_error(invoke(*_table_args(path, out)), "duplicated column names ('died' x2)")
    assert not out.exists()


def test_outcome_type_flag_and_one_two_status_coding(tmp_path):
    path, table = hospital_table(tmp_path)
    table.assign(died=table.index % 3).to_csv(path, index=False)
    numeric = invoke(*_table_args(path, tmp_path / "numeric", "--outcome-type", "numeric"))
    assert numeric.exit_code == 0, numeric.output
    assert "rmse" in set(pd.read_csv(tmp_path / "numeric" / "results.csv")["metric"])
    assert_clean_error(
        invoke(*_table_args(path, tmp_path / "o", "--outcome-type", "ordinal")), "'ordinal'"
    )
    assert_clean_error(
        invoke("benchmark", "--dataset", "synthetic", "--outcome-type", "binary", *FAST),
        "--table only",
    )
    # R's 1/2 status coding, with padded hospital names: both handled, both said.
    status = table.assign(died=table["died"] + 1, hospital=table["hospital"] + " ")
    status.to_csv(path, index=False)
    out = tmp_path / "status"
    result = invoke(*_table_args(path, out))
    assert result.exit_code == 0, result.output
    assert "note: Outcome 'died' is coded 1/2" in result.output
    assert "2 = 1, the other value = 0" in result.output
    assert "note: Task column 'hospital': removed surrounding whitespace" in result.output
    results = pd.read_csv(out / "results.csv")
    assert "auroc" in set(results["metric"])
    assert sorted(results["task"].unique()) == ["h0", "h1", "h2", "h3"]
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["positive_label"] == "2"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["benchmark", "--shot", "4"], "No such option: --shot"),
        (["benchmark", "--shots"], "'--shots' requires an argument"),
        (["benchmark", "--draws", "many"], "'--draws'"),
        (["data", "fetch"], "Missing argument"),
        (["benchmrk"], "No such command"),
    ],
    ids=["unknown-option", "missing-value", "bad-type", "missing-argument", "unknown-command"],
)
def test_usage_errors_are_one_line_without_a_box(args, fragment):
    result = invoke(*args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, result.output
    assert 1 <= len(lines) <= 2 and fragment in lines[0], result.stderr
    assert lines[0].startswith("error: ")
    assert not set("╭│╰─") & set(result.stderr)
    assert result.stdout == ""


def _los_table(tmp_path):
    path, table = hospital_table(tmp_path)
    rng = np.random.default_rng(1)
    table["los_days"] = 3 + 2 * table["lactate"] + rng.normal(0, 1, len(table))
    table.drop(columns="died").to_csv(path, index=False)
    return ["benchmark", "--table", str(path), "--task-col", "hospital", "--outcome-col",
            "los_days", "--shots", "5", "--draws", "1"]  # fmt: skip


def test_default_methods_follow_a_numeric_outcome(tmp_path):
    out = tmp_path / "run"
    result = invoke(*_los_table(tmp_path), "--meta-iterations", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    methods = set(pd.read_csv(out / "results.csv")["method"])
    from metamed.learners import default_methods  # here: importing the CLI must stay light
    from metamed.outcomes import NUMERIC

    assert methods == set(default_methods(NUMERIC)) and "protonet" not in methods
    config = json.loads((out / "config.json").read_text())
    assert "protonet" not in config["config"]["methods"]


def test_requested_method_that_cannot_model_the_outcome_fails_before_training(tmp_path):
    out = tmp_path / "run"
    result = invoke(*_los_table(tmp_path), "--methods", "local-logreg,protonet", "--out", str(out))
    assert_clean_error(result, "'protonet'", "numeric outcome", "local-logreg", "pooled")
    assert "meta-trained" not in result.output
    assert not out.exists()
