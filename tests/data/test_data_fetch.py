"""fetch_dataset against a loopback HTTP server (no internet needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metamed.data.fetch import fetch_dataset
from metamed.data.registry import get_source, load_dataset, verify
from metamed.errors import ChecksumError, DataNotFoundError, MetamedValueError


def _leftovers(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) if dest.exists() else []


def test_fetch_real_files_from_loopback(uci_heart_dir: Path, tmp_path: Path, serve) -> None:
    calls: list[tuple[str, int, int]] = []
    with serve(uci_heart_dir.parent) as url:
        folder = fetch_dataset(
            "uci-heart",
            tmp_path,
            base_url=f"{url}/uci-heart-disease",
            progress=lambda *a: calls.append(a),
        )
        assert folder == tmp_path / "uci-heart-disease"
        assert verify("uci-heart", tmp_path).keys() == {
            f.name for f in get_source("uci-heart").files
        }
        assert load_dataset("uci-heart", tmp_path).n_patients == 920
        assert _leftovers(tmp_path) == ["uci-heart-disease"] + [
            f"uci-heart-disease/{f.name}" for f in sorted(get_source("uci-heart").files)
        ]
        # Progress reached each file's full size.
        final = {name: done for name, done, _ in calls}
        assert final == {f.name: f.size_bytes for f in get_source("uci-heart").files}
        # A second fetch finds verified files and downloads nothing.
        calls.clear()
        fetch_dataset(
            "uci-heart",
            tmp_path,
            base_url=f"{url}/uci-heart-disease",
            progress=lambda *a: calls.append(a),
        )
        assert calls == []


def test_one_corrupted_file_installs_nothing(uci_heart_dir: Path, tmp_path: Path, serve) -> None:
    served = tmp_path / "served"
    shutil.copytree(uci_heart_dir, served)
    served.chmod(0o755)
    bad = served / "processed.va.data"
    bad.chmod(0o644)
    bad.write_bytes(bad.read_bytes().replace(b"63,1,4,140", b"64,1,4,140", 1))
    dest = tmp_path / "dest"
    with serve(served) as url, pytest.raises(ChecksumError, match="processed.va.data"):
        fetch_dataset("uci-heart", dest, base_url=url)
    assert _leftovers(dest) == []  # not even the three good files


def test_corrupted_download_rejected_without_real_data(tmp_path: Path, serve) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for item in get_source("uci-heart").files:
        (served / item.name).write_bytes(b"63,1,4,140,260,0,1,112,1,3,2,?,?,2\n")
    dest = tmp_path / "dest"
    with serve(served) as url, pytest.raises(ChecksumError, match="nothing was installed"):
        fetch_dataset("uci-heart", dest, base_url=url)
    assert _leftovers(dest) == []


def test_http_error_and_unusable_sources(tmp_path: Path, serve) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    dest = tmp_path / "dest"
    with serve(empty) as url, pytest.raises(DataNotFoundError, match="HTTP 404"):
        fetch_dataset("uci-heart", dest, base_url=url)
    assert _leftovers(dest) == []
    with pytest.raises(MetamedValueError, match="built in"):
        fetch_dataset("synthetic", dest)
    with pytest.raises(MetamedValueError, match="no public download"):
        fetch_dataset("support2", dest)
    with pytest.raises(DataNotFoundError, match="failed"):
        fetch_dataset("uci-heart", dest, base_url="http://127.0.0.1:9", timeout_s=2)
