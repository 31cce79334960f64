"""`metamed train / adapt / predict / inspect`: lineage in the manifest, risks with sets,
and one clear line (exit 2, nothing written) for every bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metamed.artifacts import artifact_id
from metamed.cli import app
from metamed.learners import Pipeline

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), result.output


@pytest.fixture(scope="module")
def adapted(deploy_dir):
    out = deploy_dir / "models" / "site-h4"
    result = invoke("adapt", "--model", deploy_dir / "models" / "meta", "--support",
                    deploy_dir / "support.csv", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_adapted_manifest_records_parent_and_support_hash(deploy_dir, adapted):
    summary = json.loads(invoke("inspect", "--model", adapted, "--json").output)
    lineage = summary["lineage"]
    assert lineage["parent"] == {
        "id": "meta",
        "manifest_sha256": artifact_id(deploy_dir / "models" / "meta"),
    }
    support_bytes = (deploy_dir / "support.csv").read_bytes()
    assert lineage["support_sha256"] == hashlib.sha256(support_bytes).hexdigest()
    assert lineage["support_rows"] == 60 and lineage["method"] == "cv+"
    assert summary["uncertainty"] == {
        "coverage": 0.9, "method": "cv+", "calibration_rows": 60, "kind": "prediction set",
    }  # fmt: skip
    assert summary["kind"] == "adapted-model" and summary["learner"] == "fomaml"
    ages = next(c for c in summary["features"] if c["name"] == "age")
    assert ages["accepted_range"][0] == 0.0  # no negative age was seen at training


def test_predict_writes_risk_and_set_per_patient(deploy_dir, adapted, tmp_path):
    out = tmp_path / "risks.csv"
    result = invoke("predict", "--model", adapted, "--input", deploy_dir / "patients.csv",
                    "--out", out, "--id-col", "patient")  # fmt: skip
    assert result.exit_code == 0, result.output
    risks = pd.read_csv(out)
    assert list(risks.columns) == ["patient", "row", "risk", "prediction_set", "coverage"]
    assert risks["patient"].tolist() == [f"p{i}" for i in range(60)]
    patients = pd.read_csv(deploy_dir / "patients.csv")
    expected = Pipeline.load(adapted).predict_proba(patients)
    np.testing.assert_allclose(risks["risk"], expected, rtol=1e-12)
    assert set(risks["prediction_set"]) <= {"{0}", "{1}", "{0,1}", "{}"}
    assert (risks["coverage"] == 0.9).all()


def test_inspect_prints_schema_lineage_and_uncertainty(adapted):
    result = invoke("inspect", "--model", adapted)
    assert result.exit_code == 0, result.output
    for fragment in ("adapted from", "meta", "prediction set at 90% coverage", "heart_rate",
                     "icu, medical, surgical"):  # fmt: skip
        assert fragment in result.output


def test_bad_support_and_patients_are_refused_with_one_line(deploy_dir, adapted, tmp_path):
    meta = deploy_dir / "models" / "meta"
    support = pd.read_csv(deploy_dir / "support.csv")
    cases = {
        "no_outcome": (support.drop(columns=["died"]), "lacks outcome column 'died'"),
        "one_class": (support.assign(died=0), "one class only (all died = 0)"),
        "age_400": (support.assign(age=[400] + [60] * 59), "Row 0, column 'age': 400 is outside"),
        "negative_rate": (
            support.assign(heart_rate=[80] * 59 + [-5]),
            "Row 59, column 'heart_rate': -5",
        ),
        "new_ward": (support.assign(ward="icuu"), "unknown category 'icuu'. Did you mean 'icu'?"),
        "text_age": (support.assign(age=["old"] * 60), "column 'age': expected a number"),
        "died_2": (support.assign(died=[2] + [0, 1] * 29 + [1]), "a binary outcome is 0 or 1"),
    }
    for name, (frame, message) in cases.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        out = tmp_path / f"model-{name}"
        assert_clean_error(
            invoke("adapt", "--model", meta, "--support", path, "--out", out), message
        )
        assert not out.exists(), name
    few = tmp_path / "few.csv"
    support.iloc[[0, 1, 2, 3, 4, 5, 6, 7]].to_csv(few, index=False)
    if support.iloc[:8]["died"].nunique() == 2:
        assert_clean_error(
            invoke("adapt", "--model", meta, "--support", few, "--out", tmp_path / "m"),
            "at least 9 support patients",
        )
    patients = pd.read_csv(deploy_dir / "patients.csv")
    bad = tmp_path / "bad.csv"
    patients.drop(columns=["lactate"]).to_csv(bad, index=False)
    out = tmp_path / "risks.csv"
    assert_clean_error(
        invoke("predict", "--model", adapted, "--input", bad, "--out", out),
        "lacks input column 'lactate'",
    )
    assert not out.exists()
    assert_clean_error(
        invoke("predict", "--model", meta, "--input", deploy_dir / "patients.csv", "--out", out),
        "meta-trained but not adapted",
    )
    assert_clean_error(
        invoke(
            "adapt",
            "--model",
            adapted,
            "--support",
            deploy_dir / "support.csv",
            "--out",
            tmp_path / "again",
        ),  # fmt: skip
        "already adapted to a site",
    )
    assert_clean_error(
        invoke("adapt", "--model", meta, "--support", deploy_dir / "support.csv", "--out", adapted),
        "already exists and is not empty; rerun with --force",
    )


def test_train_config_mistakes_are_named_before_any_training(deploy_dir, tmp_path):
    base = (deploy_dir / "train.toml").read_text()
    cases = {
        "typo": (
            base.replace("[method]", "[methd]"),
            "unknown key 'methd'. Did you mean 'method'?",
        ),
        "param": (
            base.replace("meta_iterations", "meta_iteration"),
            "fomaml do(es) not accept 'meta_iteration' (no learner accepts it). "
            "Did you mean 'meta_iterations'?",
        ),  # fmt: skip
        "learner": (base.replace('"fomaml"', '"fomal"'), "Unknown method 'fomal'"),
        "toml": (base + "\nseed = \n", "is not valid TOML"),
        "both": (
            base.replace('table = "train.csv"', 'table = "train.csv"\ndataset = "uci-heart"'),
            "either a dataset or a table, not both",
        ),  # fmt: skip
        "neither": (
            base.split("[data]")[0] + '[data]\ntask_col = "hospital"\n[method]\nname = "fomaml"\n',
            "exactly one of dataset",
        ),
        "table-keys-without-table": (  # the message quotes [data]: printed as it is
            base.replace('table = "train.csv"', ""),
            "(outcome_col, feature_cols, ... in [data])",
        ),
    }
    for name, (text, message) in cases.items():
        config = deploy_dir / f"bad-{name}.toml"  # beside train.csv, which it names
        config.write_text(text)
        out = tmp_path / name
        assert_clean_error(invoke("train", "--config", config, "--out", out), message)
        assert not out.exists()


def test_train_param_flag_sets_a_hyperparameter_on_top_of_the_file(deploy_dir, tmp_path):
    out = tmp_path / "narrow"
    config = deploy_dir / "train.toml"
    result = invoke("train", "--config", config, "--out", out, "--param", "fomaml.hidden_sizes=[8]")
    assert result.exit_code == 0, result.output
    learner = json.loads((out / "manifest.json").read_text())["learner"]
    assert learner["hyperparameters"]["hidden_sizes"] == [8]  # the file says [16]
    assert learner["hyperparameters"]["meta_iterations"] == 10  # the file's, kept
    bad = tmp_path / "bad"
    assert_clean_error(
        invoke("train", "--config", config, "--out", bad, "--param", "fomal.hidden_sizes=[8]"),
        "--param names method 'fomal', which is not run here. Did you mean 'fomaml'?",
    )
    assert not bad.exists()


def test_adapt_recalibrate_is_recorded_and_predicts(deploy_dir, tmp_path):
    out = tmp_path / "recal"
    result = invoke("adapt", "--model", deploy_dir / "models" / "meta", "--support",
                    deploy_dir / "support.csv", "--out", out, "--recalibrate")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "risks recalibrated on them" in " ".join(result.output.split())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["adapted_from"]["recalibrated"] is True
    risks = tmp_path / "risks.csv"
    result = invoke("predict", "--model", out, "--input", deploy_dir / "patients.csv",
                    "--out", risks, "--id-col", "patient")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_csv(risks)["risk"].between(0, 1).all()


def test_a_guard_model_says_what_it_serves_at_the_site(deploy_dir, tmp_path):
    """A site deploys the adapt-or-not guard (method guard): adapting records and prints
    its choice for that site, and inspect shows it."""
    guarded = tmp_path / "guard"
    config = tmp_path / "guard.toml"
    config.write_text(
        (deploy_dir / "train.toml").read_text()
        .replace('name = "fomaml"', 'name = "guard"')
        .replace("params = { meta_iterations = 10, hidden_sizes = [16], meta_batch_size = 4 }",
                 'params = { adapter = "recal-logistic", reference = "pooled-logreg" }')
        .replace('table = "train.csv"', f'table = "{deploy_dir / "train.csv"}"')
    )  # fmt: skip
    result = invoke("train", "--config", config, "--out", guarded)
    assert result.exit_code == 0, result.output
    site = tmp_path / "site"
    result = invoke("adapt", "--model", guarded, "--support", deploy_dir / "support.csv",
                    "--out", site)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "guard: serves " in result.output
    record = json.loads((site / "manifest.json").read_text())["provenance"]["adapted_from"]
    assert record["guard"]["choice"] in ("pooled", "blend", "adapted")
    shown = " ".join(invoke("inspect", "--model", site).output.split())
    assert "guard serves " in shown
