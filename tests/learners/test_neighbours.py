"""Tanimoto kNN: the similarity is RDKit's, the vote is the nearest support molecules'."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.learners import TanimotoKNN
from metamed.learners.neighbours import tanimoto
from metamed.tasks import Task


def test_tanimoto_matches_rdkit_on_fingerprints() -> None:
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    smiles = ["CCO", "CCCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fps = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    bits = np.array([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles])
    expected = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
    np.testing.assert_allclose(tanimoto(bits, bits), expected, rtol=1e-12)
    assert tanimoto(np.zeros((1, 4)), np.zeros((2, 4))).tolist() == [[0.0, 0.0]]


def test_a_query_takes_the_label_of_its_near_copies() -> None:
    rng = np.random.default_rng(0)
    actives = (rng.random((1, 64)) < 0.3).astype(np.float32)
    inactives = (rng.random((1, 64)) < 0.3).astype(np.float32)
    support = Task("assay", np.vstack([actives, inactives]), np.array([1.0, 0.0]))
    model = TanimotoKNN(n_neighbors=1).meta_fit([support]).adapt(support)
    near_active = actives.copy()
    near_active[0, :3] = 1 - near_active[0, :3]  # three bits flipped
    p = model.predict_proba(np.vstack([near_active, inactives]))
    assert p[0] == pytest.approx(1.0) and p[1] == pytest.approx(0.0)
    # with both neighbours voting, the more similar one weighs more
    both = TanimotoKNN(n_neighbors=5).meta_fit([support]).adapt(support)
    assert 0.5 < both.predict_proba(near_active)[0] < 1.0
