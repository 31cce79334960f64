"""Molecular features: fingerprints as RDKit computes them, the disk cache, scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metamed.data import molecules
from metamed.data.molecules import (
    FingerprintSettings,
    featurise,
    quantile_scale_columns,
    standardise_columns,
)
from metamed.errors import MetamedTypeError, MetamedValueError

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC"]


def test_bits_match_rdkit_morgan_fingerprints(tmp_path: Path) -> None:
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    features = featurise(SMILES, FingerprintSettings(radius=3, n_bits=512), tmp_path)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=3, fpSize=512)
    for row, text in zip(features.X, SMILES, strict=True):
        expected = np.zeros(512)
        DataStructs.ConvertToNumpyArray(
            generator.GetFingerprint(Chem.MolFromSmiles(text)), expected
        )
        assert np.array_equal(row, expected)
    assert features.X.dtype == np.float32 and features.X.shape == (4, 512)


def test_counts_and_descriptors(tmp_path: Path) -> None:
    features = featurise(
        SMILES, FingerprintSettings(n_bits=256, counts=True, descriptors=True), tmp_path
    )
    assert features.X.shape == (4, 256 + len(molecules.DESCRIPTORS))
    assert features.columns[-len(molecules.DESCRIPTORS) :] == list(molecules.DESCRIPTORS)
    counts = features.X[:, features.fingerprint_columns]
    assert counts.max() > 1  # triethylamine's CH3 occurs three times
    weight = features.X[:, features.columns.index("MolWt")]
    assert weight[0] == pytest.approx(46.07, abs=0.01)  # ethanol


def test_second_run_reads_the_cache_and_settings_invalidate_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = featurise(SMILES, FingerprintSettings(n_bits=128), tmp_path)
    assert not first.from_cache and first.cache_file.is_file()

    def no_rdkit(*args: object) -> None:
        raise AssertionError("computed again instead of reading the cache")

    monkeypatch.setattr(molecules, "_compute", no_rdkit)
    second = featurise(SMILES, FingerprintSettings(n_bits=128), tmp_path)
    assert second.from_cache and np.array_equal(second.X, first.X)
    monkeypatch.undo()

    changed = [
        featurise(SMILES, FingerprintSettings(n_bits=128, radius=1), tmp_path),
        featurise(SMILES, FingerprintSettings(n_bits=128, counts=True), tmp_path),
        featurise(SMILES[::-1], FingerprintSettings(n_bits=128), tmp_path),
    ]
    assert not any(f.from_cache for f in changed)
    assert len({f.cache_file for f in [first, *changed]}) == 4
    assert np.array_equal(changed[2].X, first.X[::-1])


def test_cache_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(molecules.CACHE_DIR_ENV, str(tmp_path))
    features = featurise(SMILES[:1], FingerprintSettings(n_bits=64))
    assert features.cache_file.parent.parent == tmp_path


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetamedValueError, match="cannot parse SMILES #1 'C1CC'"):
        featurise(["CCO", "C1CC"], cache_dir=tmp_path)
    with pytest.raises(MetamedTypeError, match="list of SMILES"):
        featurise("CCO", cache_dir=tmp_path)
    with pytest.raises(MetamedValueError, match="n_bits must be in"):
        FingerprintSettings(n_bits=8)
    with pytest.raises(MetamedTypeError, match="radius must be an integer"):
        FingerprintSettings(radius=2.5)  # type: ignore[arg-type]
    assert not list(tmp_path.rglob("*.npz"))  # nothing cached for a failed run


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e39])
def test_a_descriptor_that_is_not_a_finite_float32_is_refused_and_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: float
) -> None:
    from rdkit.Chem import Descriptors

    # 1e39 is finite in float64 but infinite once cast to the matrix's float32
    monkeypatch.setattr(Descriptors, "TPSA", lambda mol: value)
    with pytest.raises(MetamedValueError, match=r"TPSA = .* SMILES #0 'CCO'"):
        featurise(SMILES, FingerprintSettings(n_bits=64, descriptors=True), tmp_path)
    assert not list(tmp_path.rglob("*.npz"))  # nothing half-right left in the cache
    featurise(SMILES, FingerprintSettings(n_bits=64), tmp_path)  # bits alone still work


def test_standardise_uses_only_the_named_rows() -> None:
    X = np.array([[1.0, 10.0], [1.0, 20.0], [0.0, 1000.0]], dtype=np.float32)
    out = standardise_columns(X, slice(1, 2), np.array([0, 1]))
    assert out[:2, 1].tolist() == [-1.0, 1.0]  # row 2 moved nothing
    assert out[:, 0].tolist() == [1.0, 1.0, 0.0]  # other columns untouched
    assert X[0, 1] == 10.0  # a copy


def test_all_rdkit_descriptors_agree_with_rdkit_and_store_missing_as_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    features = featurise(SMILES, FingerprintSettings(n_bits=64, descriptors="all"), tmp_path)
    names = [name for name, _ in Descriptors.descList]
    assert features.columns[64:] == names
    expected = Descriptors.CalcMolDescriptors(Chem.MolFromSmiles(SMILES[2]))
    row = features.X[2, 64:]
    for j, name in enumerate(names):  # aspirin, descriptor by descriptor, as float32
        assert row[j] == pytest.approx(np.float32(expected[name]), rel=1e-6, nan_ok=True)

    def fails(mol: object) -> float:
        raise ValueError("cannot compute")

    j = names.index("TPSA")
    patched = list(Descriptors.descList)
    patched[j] = ("TPSA", fails)
    patched[names.index("MolWt")] = ("MolWt", lambda mol: 1e39)
    monkeypatch.setattr(Descriptors, "descList", patched)
    broken = featurise(SMILES, FingerprintSettings(n_bits=64, descriptors="all"), tmp_path / "b")
    assert np.isnan(broken.X[:, 64 + j]).all()  # raised: missing, not an error
    assert np.isnan(broken.X[:, 64 + names.index("MolWt")]).all()  # past float32: missing
    others = np.delete(broken.X, [64 + j, 64 + names.index("MolWt")], axis=1)
    assert np.array_equal(
        others, np.delete(features.X, [64 + j, 64 + names.index("MolWt")], axis=1), equal_nan=True
    )


def test_descriptors_setting_is_checked() -> None:
    with pytest.raises(MetamedTypeError, match='descriptors must be True, False or "all"'):
        FingerprintSettings(descriptors="some")


def test_quantile_scaling_ranks_on_the_fitted_rows_only() -> None:
    rng = np.random.default_rng(0)
    heavy = np.exp(rng.normal(0, 20, size=200))  # spans hundreds of orders of magnitude
    X = np.column_stack([np.ones(200), heavy, rng.normal(size=200)]).astype(np.float64)
    X[5, 2] = np.nan
    fit = np.arange(100)
    out = quantile_scale_columns(X.astype(np.float32), slice(1, 3), fit)
    assert np.array_equal(out[:, 0], np.ones(200))  # other columns untouched
    # order kept, bounded, about unit variance on the fitted rows
    order = np.argsort(X[:, 1], kind="stable")
    assert np.all(np.diff(out[order, 1]) >= 0)
    assert np.abs(out[:, 1:]).max() <= np.sqrt(3) + 1e-6
    assert out[fit, 1].std() == pytest.approx(1.0, abs=0.05)
    assert out[5, 2] == 0.0  # missing: the fitted median
    # moving the held-out rows moves nothing that was fitted
    moved = X.copy()
    moved[100:, 1:] *= 1e6
    again = quantile_scale_columns(moved.astype(np.float32), slice(1, 3), fit)
    assert np.array_equal(again[fit], out[fit])


def test_quantile_scaling_gives_ties_one_value() -> None:
    X = np.array([[0.0], [0.0], [0.0], [1.0], [2.0]], dtype=np.float32)
    out = quantile_scale_columns(X, slice(0, 1), np.arange(5))
    assert out[0, 0] == out[1, 0] == out[2, 0]
    assert out[0, 0] < out[3, 0] < out[4, 0]
