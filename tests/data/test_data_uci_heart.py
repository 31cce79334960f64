"""UCI Heart Disease loader, against the real files (METAMED_DATA_DIR)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets.uci_heart import UCI_HEART_SCHEMA, load_uci_heart
from metamed.data.registry import get_source, load_dataset, sha256_file
from metamed.errors import ChecksumError, DataNotFoundError
from metamed.tasks import TaskSet

# Counts and prevalences published in the dataset's SOURCE.md (two decimals there).
EXPECTED_N = {"cleveland": 303, "hungarian": 294, "switzerland": 123, "va": 200}
EXPECTED_PREVALENCE = {"cleveland": 0.46, "hungarian": 0.36, "switzerland": 0.93, "va": 0.75}


@pytest.fixture(scope="module")
def heart(uci_heart_dir: Path):
    return load_uci_heart(uci_heart_dir)


def test_shape_sites_and_prevalence(heart) -> None:
    assert heart.n_patients == 920
    counts = heart.frame["site"].value_counts().to_dict()
    assert counts == EXPECTED_N
    prevalence = heart.frame.groupby("site")["disease"].mean()
    for site, expected in EXPECTED_PREVALENCE.items():
        assert abs(prevalence[site] - expected) < 0.006, (site, prevalence[site])
    assert set(heart.frame["disease"].unique()) == {0, 1}
    assert "num" not in heart.frame.columns


def test_cleaning_rules(heart) -> None:
    frame = heart.frame
    # chol == 0 meant "not recorded": all of Switzerland, 49 VA patients (SOURCE.md).
    assert (frame["chol"] == 0).sum() == 0
    missing_chol = frame["chol"].isna().groupby(frame["site"]).sum()
    assert missing_chol["switzerland"] == 123
    assert missing_chol["va"] >= 49
    assert (frame["trestbps"] == 0).sum() == 0
    # Cleveland has six '?' cells (ca and thal).
    cleveland = frame[frame["site"] == "cleveland"]
    assert int(cleveland[["ca", "thal"]].isna().sum().sum()) == 6
    assert set(frame["cp"].dropna()) == {
        "typical_angina",
        "atypical_angina",
        "non_anginal_pain",
        "asymptomatic",
    }
    assert set(frame["thal"].dropna()) == {"normal", "fixed_defect", "reversible_defect"}
    assert heart.schema == UCI_HEART_SCHEMA
    assert heart.schema.units["trestbps"] == "mm Hg"


def test_provenance_checksums_match_registry(heart, uci_heart_dir: Path) -> None:
    source = get_source("uci-heart")
    assert heart.provenance["licence"] == "CC BY 4.0"
    assert "10.24432/C52P4X" in heart.provenance["citation"]
    assert heart.provenance["checksums"] == {f.name: f.sha256 for f in source.files}
    for f in source.files:
        assert sha256_file(uci_heart_dir / f.name) == f.sha256


def test_load_dataset_with_root_dir_and_taskset(data_dir: Path, uci_heart_dir: Path) -> None:
    cohort = load_dataset("uci-heart", data_dir)
    taskset = TaskSet(cohort)
    assert taskset.names == ["cleveland", "hungarian", "switzerland", "va"]
    np.testing.assert_array_equal(taskset.summary()["n"], [303, 294, 123, 200])


def test_sites_option_chooses_the_hospitals(data_dir: Path) -> None:
    cohort = load_dataset("uci-heart", data_dir, sites=["va", "cleveland"])
    # Order-free: the sites come in the dataset's own order, whatever order was asked.
    assert list(cohort.frame["site"].unique()) == ["cleveland", "va"]
    assert cohort.n_patients == EXPECTED_N["cleveland"] + EXPECTED_N["va"]
    assert cohort.provenance["dataset"]["options"] == {"sites": ("cleveland", "va")}
    full = load_dataset("uci-heart", data_dir)
    kept = full.frame[full.frame["site"].isin(["cleveland", "va"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(cohort.frame, kept)


def test_corrupted_or_missing_file(uci_heart_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "uci-heart-disease"
    shutil.copytree(uci_heart_dir, folder)
    folder.chmod(0o755)  # the shared copy is read-only and copytree keeps that mode
    target = folder / "processed.va.data"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes().replace(b"63,1,4,140", b"64,1,4,140", 1))
    with pytest.raises(ChecksumError, match=r"processed\.va\.data.*metamed data fetch uci-heart"):
        load_uci_heart(tmp_path)
    target.unlink()
    with pytest.raises(DataNotFoundError, match="metamed data fetch uci-heart --dest DIR"):
        load_dataset("uci-heart", tmp_path)
