"""MoleculeNet loader: a self-made file (no data needed) and the real collections."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from metamed.data.datasets import moleculenet
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet


def _write(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A ``tox21.csv`` with two assays; each row (smiles, A, B), '' = untested."""
    lines = ["smiles,A,B", *(",".join(row) for row in rows)]
    (folder / "tox21.csv").write_text("\n".join(lines) + "\n")
    return folder


def _load(folder: Path):
    spec = get_source("moleculenet")
    return spec.loader(folder, **spec.resolve_options({}))


def test_empty_cells_are_untested_never_negative(tmp_path: Path) -> None:
    cohort = _load(_write(tmp_path, [("CCO", "1", ""), ("c1ccccc1", "", "0"), ("CCN", "0", "1")]))
    frame = cohort.frame
    assert len(frame) == 4  # six cells, two empty
    assert frame.groupby("assay")["active"].apply(list).to_dict() == {"A": [0, 1], "B": [1, 0]}
    assert TaskSet(cohort).names == ["A", "B"]
    assert moleculenet.assay_names(cohort) == ["A", "B"]


def test_spellings_of_one_molecule_merge_and_conflicts_are_dropped_and_listed(
    tmp_path: Path,
) -> None:
    # OCC and C(O)C are ethanol written two ways: A agrees (1, 1), B conflicts (0 vs 1).
    cohort = _load(_write(tmp_path, [("OCC", "1", "0"), ("C(O)C", "1", "1"), ("CCN", "0", "0")]))
    report = cohort.provenance["molecules"]
    assert report["molecules"] == 2 and report["merged"] == 1
    assert report["conflicts"] == 1
    assert report["conflicting_cells"] == [{"smiles": "CCO", "assay": "B", "labels": [0, 1]}]
    cells = set(
        zip(cohort.frame["smiles"], cohort.frame["assay"], cohort.frame["active"], strict=True)
    )
    assert cells == {("CCO", "A", 1), ("CCN", "A", 0), ("CCN", "B", 0)}
    assert moleculenet.molecules_of(cohort) == ["CCN", "CCO"]


def test_unparsable_smiles_are_dropped_and_counted(tmp_path: Path) -> None:
    cohort = _load(
        _write(tmp_path, [("CCO", "1", "0"), ("C1CC", "1", "1"), ("not a smiles", "0", "")])
    )
    report = cohort.provenance["molecules"]
    assert report["unparsable"] == 2
    assert report["unparsable_smiles"] == ["C1CC", "not a smiles"]
    assert set(cohort.frame["smiles"]) == {"CCO"}
    assert "2 unparsable SMILES dropped" in cohort.provenance["cleaning"]


def test_a_label_other_than_0_1_or_empty_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetamedValueError, match="assay 'B' holds '2'.*0, 1 or empty"):
        _load(_write(tmp_path, [("CCO", "1", "0"), ("CCN", "0", "2")]))
    with pytest.raises(MetamedValueError, match="assay 'A' holds 'yes'"):
        _load(_write(tmp_path, [("CCO", "yes", "0"), ("CCN", "0", "1")]))


def test_a_file_without_a_smiles_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tox21.csv").write_text("mol,A\nCCO,1\n")
    with pytest.raises(MetamedValueError, match="first column 'smiles'"):
        _load(tmp_path)


def test_unknown_collection_gets_did_you_mean() -> None:
    with pytest.raises(MetamedValueError, match="(?i)did you mean 'tox21'"):
        load_dataset("moleculenet", "/nonexistent", collection="tox2l")


# Counts of the real files (chemprop's data/ folder, RDKit 2024+ canonical SMILES).
REAL = {
    # collection: (assays, molecules kept, unparsable, labelled cells)
    "tox21": (12, 7823, 8, 77864),
    "sider": (27, 1427, 0, 38529),
}


@pytest.mark.parametrize("collection", sorted(REAL))
def test_real_collections(collection: str, data_dir: Path, need_dataset) -> None:
    need_dataset("moleculenet")
    cohort = load_dataset("moleculenet", data_dir, collection=collection)
    n_assays, n_molecules, n_unparsable, n_cells = REAL[collection]
    report = cohort.provenance["molecules"]
    assert (len(TaskSet(cohort)), report["molecules"], report["unparsable"]) == (
        n_assays,
        n_molecules,
        n_unparsable,
    )
    assert len(cohort.frame) == n_cells
    assert report["conflicts"] == 0
    # never a negative invented: every labelled cell of the file is a row, no more
    raw = pd.read_csv(data_dir / "moleculenet" / moleculenet.COLLECTIONS[collection])
    parsed = raw[~raw["smiles"].isin(report["unparsable_smiles"])]
    assert int(parsed.iloc[:, 1:].notna().sum().sum()) == n_cells
    assert cohort.frame.groupby("assay")["active"].sum().to_dict() == {
        assay: int(parsed[assay].sum()) for assay in moleculenet.assay_names(cohort)
    }
