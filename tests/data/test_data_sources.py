"""Dataset registry: lookup, data-dir rules, verification (no real data needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from metamed.data.sources import (
    DATASETS,
    DataFile,
    DatasetSource,
    get_source,
    load_dataset,
    register_source,
    sha256_file,
    verify,
)
from metamed.errors import (
    ChecksumError,
    DataNotFoundError,
    MetamedValueError,
    UnknownNameError,
)


def test_registry_entries_are_complete() -> None:
    assert {"uci-heart", "synthetic"} <= set(DATASETS)
    heart = get_source("uci-heart")
    assert heart.folder == "uci-heart-disease" and heart.loadable
    assert [f.name for f in heart.files] == [
        f"processed.{s}.data" for s in ("cleveland", "hungarian", "switzerland", "va")
    ]
    assert heart.files[0].url == (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/"
        "processed.cleveland.data"
    )
    for source in DATASETS.values():
        assert source.title and source.licence and source.citation
        for f in source.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.size_bytes > 0


def test_unknown_name_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'uci-heart'"):
        get_source("uci-hart")
    with pytest.raises(KeyError):  # builtin family kept for callers unaware of metamed
        get_source("nope")


def test_synthetic_needs_no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAMED_DATA_DIR", raising=False)
    cohort = load_dataset("synthetic")
    assert cohort.n_patients == get_source("synthetic").n_patients
    assert cohort.frame["site"].nunique() == get_source("synthetic").n_tasks


def test_missing_data_dir_names_command_and_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("METAMED_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("uci-heart")
    assert "metamed data fetch uci-heart --dest DIR" in str(info.value)
    assert "METAMED_DATA_DIR" in str(info.value)
    monkeypatch.setenv("METAMED_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="folder 'uci-heart-disease' not found") as info:
        load_dataset("uci-heart")
    assert "metamed data fetch uci-heart --dest DIR" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_listed_dataset_without_loader_is_clear() -> None:
    with pytest.raises(MetamedValueError, match="cannot load it yet"):
        load_dataset("support2", "/nonexistent")


def _fake_source(tmp_path: Path, payload: bytes) -> DatasetSource:
    return DatasetSource(
        name="fake-test-set",
        title="t",
        description="d",
        licence="l",
        citation="c",
        homepage="",
        folder="fake",
        files=(DataFile("a.txt", hashlib.sha256(payload).hexdigest(), len(payload)),),
    )


def test_verify_and_sha256(tmp_path: Path) -> None:
    payload = b"hello metamed\n" * 1000
    source = register_source(_fake_source(tmp_path, payload))
    try:
        (tmp_path / "fake").mkdir()
        path = tmp_path / "fake" / "a.txt"
        path.write_bytes(payload)
        assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(payload).hexdigest()
        assert verify("fake-test-set", tmp_path) == {"a.txt": source.files[0].sha256}
        # The dataset folder itself is accepted as data_dir too.
        assert verify("fake-test-set", tmp_path / "fake") == {"a.txt": source.files[0].sha256}
        path.write_bytes(payload + b"x")
        with pytest.raises(ChecksumError, match="a.txt.*metamed data fetch fake-test-set"):
            verify("fake-test-set", tmp_path)
        path.unlink()
        with pytest.raises(DataNotFoundError, match="a.txt"):
            verify("fake-test-set", tmp_path)
        with pytest.raises(MetamedValueError, match="already registered"):
            register_source(source)
    finally:
        DATASETS.pop("fake-test-set", None)


def test_verify_real_files(data_dir: Path, uci_heart_dir: Path) -> None:
    """Every listed dataset present in METAMED_DATA_DIR matches its registry checksums
    (uci-heart must be there; the others are checked when present)."""
    checked = 0
    for name, source in DATASETS.items():
        if source.files and (data_dir / source.folder).is_dir():
            assert set(verify(name, data_dir)) == {f.name for f in source.files}
            checked += 1
    assert checked >= 1
