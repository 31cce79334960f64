"""Dataset registry: lookup, options, checked loading, provenance (no real data needed)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

import metamed.data.registry as registry
from metamed.data import Cohort, Schema, make_synthetic_cohort
from metamed.data.registry import (
    DATASETS,
    DataFile,
    DatasetSpec,
    Option,
    get_source,
    load_dataset,
    read_files,
    register_dataset,
    sha256_file,
    verify,
)
from metamed.errors import (
    ChecksumError,
    DataNotFoundError,
    MetamedTypeError,
    MetamedValueError,
    UnknownNameError,
)


def test_registry_entries_are_complete() -> None:
    assert {"uci-heart", "synthetic"} <= set(DATASETS)
    heart = get_source("uci-heart")
    assert heart.folder == "uci-heart-disease" and heart.loadable and heart.version >= 1
    assert [f.name for f in heart.files] == [
        f"processed.{s}.data" for s in ("cleveland", "hungarian", "switzerland", "va")
    ]
    assert heart.files[0].url == (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/"
        "processed.cleveland.data"
    )
    for spec in DATASETS.values():
        assert spec.title and spec.licence and spec.citation and spec.version >= 1
        for f in spec.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.size_bytes > 0 and f.origin, (spec.name, f.name)
            assert f.url is None or f.url.startswith("https://"), (spec.name, f.name)


def test_unknown_name_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'uci-heart'"):
        get_source("uci-hart")
    with pytest.raises(KeyError):  # builtin family kept for callers unaware of metamed
        get_source("nope")


def test_unknown_option_did_you_mean() -> None:
    # Options are checked before any file is looked for: no data directory needed.
    with pytest.raises(UnknownNameError, match="no option 'site'. Did you mean 'sites'"):
        load_dataset("uci-heart", "/nonexistent", site=["va"])
    with pytest.raises(UnknownNameError, match="Did you mean 'n_tasks'.*Its options: n_tasks"):
        load_dataset("synthetic", n_task=3)


def test_unknown_option_value_did_you_mean() -> None:
    with pytest.raises(MetamedValueError, match="task_kind='sites'.*Did you mean 'site'"):
        load_dataset("synthetic", task_kind="sites")
    with pytest.raises(MetamedValueError, match="'clevland'.*Did you mean 'cleveland'"):
        load_dataset("uci-heart", "/nonexistent", sites=["clevland", "va"])
    with pytest.raises(MetamedValueError, match="at least one"):
        load_dataset("uci-heart", "/nonexistent", sites=[])
    with pytest.raises(MetamedTypeError, match="list of values"):
        load_dataset("uci-heart", "/nonexistent", sites=3)


def test_multiple_choice_option_is_order_free() -> None:
    option = Option("sites", ("a", "b", "c"), choices=("a", "b", "c"), multiple=True)
    assert option.check(["c", "a"], "d") == option.check(("a", "c", "a"), "d") == ("a", "c")
    assert option.check("b", "d") == ("b",)


def test_synthetic_needs_no_data_dir_and_takes_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAMED_DATA_DIR", raising=False)
    cohort = load_dataset("synthetic")
    assert cohort.n_patients == get_source("synthetic").n_patients
    assert cohort.frame["site"].nunique() == get_source("synthetic").n_tasks
    small = load_dataset("synthetic", n_tasks=3, n_per_task=20, task_kind="condition")
    assert small.frame["condition"].nunique() == 3 and small.n_patients == 60
    assert small.provenance["dataset"]["options"]["task_kind"] == "condition"
    direct = make_synthetic_cohort(n_tasks=3, n_per_task=20, task_kind="condition")
    pd.testing.assert_frame_equal(small.frame, direct.frame)


def test_docs_index_lists_every_dataset() -> None:
    index = Path(registry.__file__).resolve().parents[3] / "docs" / "datasets" / "README.md"
    text = index.read_text("utf-8")
    missing = [name for name in DATASETS if f"| `{name}`" not in text]
    assert missing == [], f"add {missing} to {index}"


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
        load_dataset("tcga-brca", "/nonexistent")


PAYLOAD = b"site,x,y\na,1,0\na,2,1\nb,3,1\nb,4,0\n"


def _loader(folder: Path, *, scale: float) -> Cohort:
    frame = pd.read_csv(folder / "a.csv")
    frame["x"] = frame["x"] * scale
    schema = Schema(outcome="y", numeric=("x",), group=("site",))
    return Cohort("fake", frame, schema, provenance={"source": "test file"})


@contextmanager
def fake_dataset(
    tmp_path: Path, payload: bytes = PAYLOAD, loader: Callable[..., Cohort] = _loader
) -> Iterator[DatasetSpec]:
    """A registered two-task dataset with one file in ``tmp_path/fake``; removed afterwards."""
    (tmp_path / "fake").mkdir(exist_ok=True)
    (tmp_path / "fake" / "a.csv").write_bytes(payload)
    spec = register_dataset(
        DatasetSpec(
            name="fake-test-set",
            version=3,
            title="t",
            description="d",
            licence="l",
            citation="c",
            homepage="",
            folder="fake",
            files=(DataFile("a.csv", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD)),),
            options=(Option("scale", 1.0, "multiplies x"),),
            loader=loader,
        )
    )
    try:
        yield spec
    finally:
        DATASETS.pop("fake-test-set", None)


def test_provenance_stamped(tmp_path: Path) -> None:
    with fake_dataset(tmp_path) as spec:
        cohort = load_dataset("fake-test-set", tmp_path, scale=2.0)
    assert cohort.frame["x"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert cohort.provenance["dataset"] == {
        "name": "fake-test-set",
        "version": 3,
        "options": {"scale": 2.0},
    }
    assert cohort.provenance["checksums"] == {"a.csv": spec.files[0].sha256}
    assert cohort.provenance["licence"] == "l" and cohort.provenance["citation"] == "c"
    assert cohort.provenance["source"] == "test file"  # the loader's own keys are kept


def test_tampered_checksum_refused_before_loading(tmp_path: Path) -> None:
    calls: list[Path] = []

    def spy(folder: Path, **options: object) -> Cohort:
        calls.append(folder)
        return _loader(folder, **options)

    with fake_dataset(tmp_path, PAYLOAD.replace(b"a,2,1", b"a,2,0"), loader=spy):
        with pytest.raises(ChecksumError, match="a.csv.*metamed data fetch fake-test-set"):
            load_dataset("fake-test-set", tmp_path)
    assert calls == []  # the loader never saw the tampered file


def test_each_file_hashed_once_per_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []

    def counting_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
        hashed.append(Path(path).name)
        return sha256_file(path, chunk_bytes)

    monkeypatch.setattr(registry, "sha256_file", counting_sha256)
    with fake_dataset(tmp_path):
        load_dataset("fake-test-set", tmp_path)
    assert hashed == ["a.csv"]


def test_verify_and_sha256(tmp_path: Path) -> None:
    with fake_dataset(tmp_path) as spec:
        path = tmp_path / "fake" / "a.csv"
        assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(PAYLOAD).hexdigest()
        assert verify("fake-test-set", tmp_path) == {"a.csv": spec.files[0].sha256}
        # The dataset folder itself is accepted as data_dir too.
        assert verify("fake-test-set", tmp_path / "fake") == {"a.csv": spec.files[0].sha256}
        path.write_bytes(PAYLOAD + b"x")
        with pytest.raises(ChecksumError, match="a.csv.*metamed data fetch fake-test-set"):
            verify("fake-test-set", tmp_path)
        path.unlink()
        with pytest.raises(DataNotFoundError, match="a.csv"):
            verify("fake-test-set", tmp_path)
        with pytest.raises(MetamedValueError, match="already registered"):
            register_dataset(spec)


def test_bad_specs_are_refused() -> None:
    base = dict(title="t", description="d", licence="l", citation="c", homepage="")
    with pytest.raises(MetamedValueError, match="version"):
        DatasetSpec(name="x", version=0, **base)
    with pytest.raises(MetamedValueError, match="option twice"):
        DatasetSpec(name="x", version=1, options=(Option("a", 1), Option("a", 2)), **base)
    with pytest.raises(MetamedValueError, match="needs choices"):
        Option("a", (), multiple=True)


def test_read_files_refuses_a_bad_file_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ok.files.json").write_text(
        '{"origin": "here", "files": [{"name": "a", "bytes": 1, "sha256": "' + "0" * 64 + '"}]}'
    )
    (package / "bad.files.json").write_text(
        '{"files": [{"name": "a", "bytes": 1, "sha256": "abc", "md5": "x"}]}'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert read_files("fakepkg", "ok.files.json") == (DataFile("a", "0" * 64, 1, None, "here"),)
    with pytest.raises(MetamedValueError, match="bad.files.json: not a valid file list"):
        read_files("fakepkg", "bad.files.json")
