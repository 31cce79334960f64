"""The MoleculeNet few-shot protocol on a self-made collection, and the real splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import moleculenet
from metamed.data.molecules import FingerprintSettings, featurise
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.evaluation.molecules import (
    MoleculeProtocolConfig,
    assay_split,
    delta_auprc,
    molecule_task_split,
    molecule_tasks,
    run_molecule_protocol,
    summarise_molecules,
    training_label_features,
)
from metamed.learners import TanimotoKNN, make_learner
from metamed.tasks import TaskSet

TOX21_ASSAYS = [
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
]  # fmt: skip


def tiny_tox21(folder: Path, n: int = 48, seed: int = 0):
    """A tox21.csv of ``n`` small molecules x the 12 Tox21 assays (random labels, some empty)."""
    smiles = [f"{'C' * (i // 4 + 1)}{['O', 'N', 'Cl', 'c1ccccc1'][i % 4]}" for i in range(n)]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 12)).astype(object)
    labels[rng.random((n, 12)) < 0.1] = ""
    frame = pd.DataFrame(labels, columns=TOX21_ASSAYS)
    frame.insert(0, "smiles", smiles)
    frame.to_csv(folder / "tox21.csv", index=False)
    spec = get_source("moleculenet")
    return spec.loader(folder, **spec.resolve_options({}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moleculenet")
    cohort = tiny_tox21(folder)
    X = featurise(
        moleculenet.molecules_of(cohort), FingerprintSettings(n_bits=128), folder / "cache"
    ).X
    return cohort, X


def test_literature_split_of_tox21_holds_out_the_three_stress_assays(tiny) -> None:
    cohort, _ = tiny
    split = assay_split(cohort, "tox21")
    assert split.test == ("SR-HSE", "SR-MMP", "SR-p53")
    assert split.train == tuple(TOX21_ASSAYS[:9])
    with pytest.raises(MetamedValueError, match="Unknown split 'provider:ATG' for tox21"):
        assay_split(cohort, "tox21", "provider:ATG")


def test_validation_split_leaves_the_literature_test_assays_out(tiny) -> None:
    cohort, _ = tiny
    split = assay_split(cohort, "tox21", "validation")
    literature = assay_split(cohort, "tox21")
    assert split.train == tuple(TOX21_ASSAYS[:6])
    assert split.test == ("NR-PPAR-gamma", "SR-ARE", "SR-ATAD5")
    assert set(split.train) | set(split.test) == set(literature.train)
    assert not (set(split.train) | set(split.test)) & set(literature.test)


CONFIG = MoleculeProtocolConfig(shots=(1, 3), draws=3, max_train_rows=None, val_rows_fraction=0)


def test_every_method_sees_the_same_balanced_episodes(tiny) -> None:
    cohort, X = tiny
    split = assay_split(cohort, "tox21")
    methods = {name: make_learner(name) for name in ("local-knn", "local-logreg")}
    result = run_molecule_protocol(cohort, X, split, methods, CONFIG, "tiny")
    table = result.results
    assert set(table["task"]) == set(split.test)
    assert len(table) == 2 * 3 * 2 * 3 * 2  # methods x assays x K x draws x metrics
    # a different seed draws other supports: scores move
    other = run_molecule_protocol(
        cohort, X, split, methods, MoleculeProtocolConfig(shots=(1, 3), draws=3, seed=1,
        max_train_rows=None, val_rows_fraction=0), "tiny",
    )  # fmt: skip
    assert not np.array_equal(table["value"], other.results["value"])
    summary = summarise_molecules(table)
    assert set(summary["n_draws"]) == {3} and set(summary["n_assays"]) == {3}
    cell = table[(table.method == "local-knn") & (table.k == 3) & (table.metric == "roc_auc")]
    row = summary[
        (summary.method == "local-knn") & (summary.k == 3) & (summary.metric == "roc_auc")
    ]
    assert row["mean"].iloc[0] == pytest.approx(cell.groupby("draw")["value"].mean().mean())


SEEN: list[tuple[str, int]] = []


class _Spy(TanimotoKNN):
    """Records which tasks meta-training was given."""

    def meta_fit(self, train_tasks, val_tasks=None):
        SEEN.extend((t.name, len(t)) for t in [*train_tasks, *(val_tasks or [])])
        return super().meta_fit(train_tasks, val_tasks)


def test_meta_training_sees_only_the_meta_train_assays(tiny) -> None:
    cohort, X = tiny
    split = assay_split(cohort, "tox21")
    SEEN.clear()
    config = MoleculeProtocolConfig(shots=(1,), draws=1, max_train_rows=None)
    run_molecule_protocol(cohort, X, split, {"spy": _Spy()}, config, "tiny")
    assert {name for name, _ in SEEN} == set(split.train)
    n_train_rows = int(cohort.frame["assay"].isin(split.train).sum())
    assert sum(n for _, n in SEEN) == n_train_rows  # training + early-stopping rows


def test_too_few_actives_for_k_is_refused_before_training(tiny) -> None:
    cohort, X = tiny
    with pytest.raises(MetamedValueError, match="K=40 per class needs 41 of each"):
        run_molecule_protocol(
            cohort, X, assay_split(cohort, "tox21"), {"knn": make_learner("local-knn")},
            MoleculeProtocolConfig(shots=(40,), draws=1), "tiny",
        )  # fmt: skip


def test_delta_auprc_is_zero_for_chance_and_positive_for_skill() -> None:
    y = np.array([0, 0, 0, 1] * 50)
    assert delta_auprc(y, np.full(200, 0.3)) == pytest.approx(0.0)
    assert delta_auprc(y, y + 0.0) == pytest.approx(0.75)


def test_toxcast_provider_split_holds_out_a_whole_provider(data_dir: Path, need_dataset) -> None:
    need_dataset("moleculenet")
    cohort = load_dataset("moleculenet", data_dir, collection="toxcast")
    split = assay_split(cohort, "toxcast", "provider:NVS")
    assert len(split.test) == 139 and all(a.startswith("NVS_") for a in split.test)
    assert not any(a.startswith("NVS_") for a in split.train) and len(split.train) == 478
    literature = assay_split(cohort, "toxcast")
    assert (len(literature.train), len(literature.test)) == (450, 167)
    with pytest.raises(MetamedValueError, match="(?i)no assay provider 'NVX'.*did you mean 'NVS'"):
        assay_split(cohort, "toxcast", "provider:NVX")


def test_test_assays_built_on_demand_equal_the_assays_built_at_once(tiny) -> None:
    cohort, X = tiny
    split = assay_split(cohort, "tox21")
    lazy = molecule_task_split(cohort, X, split, CONFIG).test
    smiles = moleculenet.molecules_of(cohort)
    eager = molecule_tasks(
        TaskSet(cohort, "assay"), split.test, X, {s: i for i, s in enumerate(smiles)}
    )
    assert len(lazy) == len(eager) == 3
    for built, task in zip(lazy, eager, strict=True):
        assert built.name == task.name
        np.testing.assert_array_equal(built.X, task.X)
        np.testing.assert_array_equal(built.y, task.y)
    assert [(n, len(y)) for n, y in lazy.labels()] == [(t.name, len(t)) for t in eager]


def _permuted_test_labels(cohort, test_assays, seed: int = 1):
    """The cohort with every test assay's labels shuffled (within each assay)."""
    frame = cohort.frame.copy()
    rng = np.random.default_rng(seed)
    for name in test_assays:
        rows = np.flatnonzero((frame["assay"] == name).to_numpy())
        frame.iloc[rows, frame.columns.get_loc("active")] = rng.permutation(
            frame["active"].to_numpy()[rows]
        )
    return type(cohort)(cohort.name, frame, cohort.schema, cohort.provenance)


def test_training_label_features_never_see_a_test_assay_label(tiny) -> None:
    cohort, X = tiny
    split = assay_split(cohort, "tox21")
    permuted = _permuted_test_labels(cohort, split.test)
    assert not cohort.frame["active"].equals(permuted.frame["active"])
    np.testing.assert_array_equal(
        training_label_features(cohort, split.train),
        training_label_features(permuted, split.train),
    )
    # ... nor a task's features: the test tasks' rows are the same whatever those labels.
    config = MoleculeProtocolConfig(shots=(2,), draws=2, max_train_rows=None)
    a = molecule_task_split(cohort, X, split, config, aux_labels=True)
    b = molecule_task_split(permuted, X, split, config, aux_labels=True)
    for ta, tb in zip(a.test, b.test, strict=True):
        np.testing.assert_array_equal(ta.X, tb.X)
    for ta, tb in zip(a.train, b.train, strict=True):
        np.testing.assert_array_equal(ta.X, tb.X)


def test_training_label_features_carry_the_training_labels_in_three_states(tiny) -> None:
    cohort, _ = tiny
    split = assay_split(cohort, "tox21")
    F = training_label_features(cohort, split.train)
    assert F.shape == (len(moleculenet.molecules_of(cohort)), 2 * len(split.train))
    row = {s: i for i, s in enumerate(moleculenet.molecules_of(cohort))}
    frame = cohort.frame
    for j, name in enumerate(split.train):
        measured = frame[frame["assay"] == name]
        idx = measured["smiles"].map(row).to_numpy()
        y = measured["active"].to_numpy()
        np.testing.assert_array_equal(F[idx, 2 * j], (y == 1).astype(np.float32))
        np.testing.assert_array_equal(F[idx, 2 * j + 1], (y == 0).astype(np.float32))
        untested = np.setdiff1d(np.arange(len(F)), idx)
        assert untested.size > 0 and not F[untested, 2 * j : 2 * j + 2].any()
    # Flipping one training label flips its feature; a meta-train task never sees its own.
    config = MoleculeProtocolConfig(shots=(2,), draws=1, max_train_rows=None, val_rows_fraction=0)
    tasks = molecule_task_split(cohort, F[:, :0] + 0, split, config, aux_labels=True)
    for j, task in enumerate(tasks.train):
        assert not task.X[:, 2 * j : 2 * j + 2].any()
        assert task.X.any()
