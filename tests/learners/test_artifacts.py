"""Model artifacts: what loading refuses, and that nothing in a saved model is unpickled.

The round trip of every registered learner (meta-learner and adapted model) is part of
the contract suite (tests/learners/test_contract.py); here are the refusals (tampered,
truncated, future format, unknown learner, a pickle in place of the weights), the value
encoding, and numeric-outcome round trips.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from metamed.artifacts import TextFile, read_artifact, write_artifact
from metamed.errors import ArtifactError, ArtifactNotFoundError, MetamedTypeError, MetamedValueError
from metamed.learners import LEARNERS, AdaptedModel, MetaLearner, make_learner
from metamed.learners.baselines import PooledMLP

SRC = Path(__file__).resolve().parents[2] / "src" / "metamed"


@pytest.fixture(scope="module")
def tasks(make_toy_tasks):
    return make_toy_tasks(n_tasks=5, n_features=4, n_rows=40)


@pytest.fixture(scope="module")
def learner(tasks) -> PooledMLP:
    return PooledMLP(hidden_sizes=(4,), max_epochs=2).meta_fit(tasks[:4])


@pytest.fixture
def saved(learner, tmp_path) -> Path:
    return learner.save(tmp_path / "model")


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def rewrite_manifest(folder: Path, manifest: dict) -> None:
    """Write an edited manifest with a valid checksum, by the rule docs/artifacts.md gives."""
    manifest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    manifest["manifest_sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def replace_weights(folder: Path, data: bytes) -> None:
    """Put ``data`` in place of the weights and make the manifest vouch for it."""
    (folder / "weights.safetensors").write_bytes(data)
    manifest = read_manifest(folder)
    manifest["files"]["weights.safetensors"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    rewrite_manifest(folder, manifest)


class _Payload:
    """A pickle that creates a file when unpickled: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# -- refusals ----------------------------------------------------------------------------
def test_changed_weights_are_refused(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"weights\.safetensors does not match its sha256"):
        MetaLearner.load(saved)


def test_truncated_weights_are_refused(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="truncated"):
        MetaLearner.load(saved)


def test_truncated_manifest_is_refused(saved: Path) -> None:
    manifest = saved / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="not valid JSON"):
        MetaLearner.load(saved)


def test_edited_manifest_is_refused(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["learner"]["state"]["y_std_"] = 2.0
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="own checksum"):
        MetaLearner.load(saved)


def test_future_format_version_is_refused(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["format_version"] = 2
    rewrite_manifest(saved, manifest)
    with pytest.raises(ArtifactError, match=r"format 2 .* reads format 1 only; upgrade metamed"):
        MetaLearner.load(saved)


def test_unknown_learner_is_refused_with_did_you_mean(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["learner"]["name"] = "poolled"
    rewrite_manifest(saved, manifest)
    with pytest.raises(ArtifactError, match="learner 'poolled' is not one.*Did you mean 'pooled'"):
        MetaLearner.load(saved)


def test_unknown_adapted_model_class_is_refused(learner, tasks, tmp_path) -> None:
    folder = learner.adapt(tasks[4]).save(tmp_path / "adapted")
    manifest = read_manifest(folder)
    manifest["model"]["class"] = "os.system"
    rewrite_manifest(folder, manifest)
    with pytest.raises(ArtifactError, match="class 'os.system' is not one this metamed knows"):
        AdaptedModel.load(folder)


def test_unknown_hyperparameter_is_refused(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["learner"]["hyperparameters"]["dropout"] = 0.5
    rewrite_manifest(saved, manifest)
    with pytest.raises(ArtifactError, match=r"no hyperparameter\(s\) \['dropout'\]"):
        MetaLearner.load(saved)


def test_file_outside_the_folder_is_refused(saved: Path) -> None:
    manifest = read_manifest(saved)
    manifest["files"]["../secret.txt"] = {"sha256": "0" * 64, "bytes": 1}
    rewrite_manifest(saved, manifest)
    with pytest.raises(ArtifactError, match="invalid file name"):
        MetaLearner.load(saved)


def test_missing_or_empty_path_is_refused(tmp_path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no such folder"):
        MetaLearner.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactNotFoundError, match="no manifest.json"):
        MetaLearner.load(tmp_path / "empty")


def test_wrong_kind_and_wrong_class_are_refused(learner, tasks, saved, tmp_path) -> None:
    with pytest.raises(ArtifactError, match="load it with MetaLearner.load"):
        AdaptedModel.load(saved)
    with pytest.raises(ArtifactError, match="holds a PooledMLP, not a ProtoNet"):
        LEARNERS["protonet"].load(saved)
    adapted = learner.adapt(tasks[4]).save(tmp_path / "adapted")
    with pytest.raises(ArtifactError, match="load it with AdaptedModel.load"):
        MetaLearner.load(adapted)


# -- no pickle ---------------------------------------------------------------------------
def test_pickle_in_place_of_the_weights_never_runs(saved: Path, tmp_path) -> None:
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(marker))
    # Unvouched for, the checksum refuses it; vouched for (manifest rewritten to match),
    # safetensors refuses it.  Either way, nothing unpickles it.
    (saved / "weights.safetensors").write_bytes(payload)
    with pytest.raises(ArtifactError, match="sha256|truncated"):
        MetaLearner.load(saved)
    replace_weights(saved, payload)
    with pytest.raises(ArtifactError, match="not a valid safetensors file"):
        MetaLearner.load(saved)
    assert not marker.exists()
    # The payload is live: unpickling it does run code, so the test above could fail.
    pickle.loads(payload)
    assert marker.exists()


def test_a_pickle_file_is_never_opened(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    old_style = tmp_path / "model.pt"
    old_style.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ArtifactError, match="is a file, not an artifact folder"):
        MetaLearner.load(old_style)
    assert not marker.exists()


def test_no_unpickling_anywhere_in_the_package() -> None:
    pattern = re.compile(
        r"\bimport pickle\b|\bfrom pickle\b|torch\.load\(|joblib|cloudpickle|dill\b"
    )
    offenders = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, "pickle-based loading found:\n" + "\n".join(offenders)


# -- writing -----------------------------------------------------------------------------
def test_values_round_trip_exactly(tmp_path) -> None:
    content = {
        "numbers": [0.1, 1 / 3, float("nan"), float("inf"), -float("inf"), 7, True, None],
        "shape": (64, 64),
        "nested": {"a": [(1, 2.5)], "text": "é"},
        "array": np.arange(6, dtype=np.int64).reshape(2, 3),
        "mask": np.array([True, False]),
        "tensor": torch.linspace(0, 1, 5, dtype=torch.float64).requires_grad_(True),
        "model": TextFile("model.txt", "tree\n0.1234567890123456789\n"),
    }
    back = read_artifact(write_artifact(tmp_path / "a", content))
    assert back["numbers"][:2] == [0.1, 1 / 3] and np.isnan(back["numbers"][2])
    assert back["numbers"][3:] == [float("inf"), -float("inf"), 7, True, None]
    assert back["shape"] == (64, 64) and back["nested"] == {"a": [(1, 2.5)], "text": "é"}
    assert back["array"].dtype == np.int64
    np.testing.assert_array_equal(back["array"], content["array"])
    np.testing.assert_array_equal(back["mask"], content["mask"])
    assert back["tensor"].requires_grad and torch.equal(back["tensor"], content["tensor"])
    assert back["model"] == content["model"]
    assert "NaN" not in (tmp_path / "a" / "manifest.json").read_text()  # strict JSON


def test_an_unsaveable_value_writes_nothing(tmp_path) -> None:
    with pytest.raises(MetamedTypeError, match="Cannot save thing: a object is not a tensor"):
        write_artifact(tmp_path / "a", {"thing": object()})
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_what_is_not_an_artifact(saved: Path, learner, tmp_path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(MetamedValueError, match="refusing to overwrite"):
        learner.save(precious)
    assert precious.read_text() == "keep me"
    # An earlier artifact is replaced, with no staging folder left behind.
    learner.save(saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes.txt"]
    MetaLearner.load(saved)


# -- numeric outcomes --------------------------------------------------------------------
NUMERIC_PARAMS = {
    "pooled": dict(hidden_sizes=(4,), max_epochs=2),
    "pooled-finetune": dict(hidden_sizes=(4,), max_epochs=2, finetune_steps=2),
    "multitask": dict(hidden_sizes=(4,), max_epochs=2),
    "local-logreg": {},
    "local-gbm": dict(n_estimators=10),
    "local-rf": dict(n_estimators=10),
    "maml": dict(hidden_sizes=(4,), meta_iterations=3, k_support=5, n_query=5),
    "reptile": dict(hidden_sizes=(4,), meta_iterations=3, k_support=5, n_query=5),
    "metapred": dict(hidden_sizes=(4,), meta_iterations=3, k_support=5, n_query=5, n_sources=2),
}


@pytest.mark.parametrize("name", sorted(NUMERIC_PARAMS))
def test_numeric_outcome_models_round_trip(name, make_toy_tasks, tmp_path) -> None:
    tasks = make_toy_tasks(n_tasks=5, n_features=4, n_rows=30, outcome_type="numeric")
    learner = make_learner(name, **NUMERIC_PARAMS[name]).meta_fit(tasks[:4])
    support, query = tasks[4].subset(np.arange(10)), tasks[4].subset(np.arange(10, 30))
    model = learner.adapt(support)
    loaded = AdaptedModel.load(model.save(tmp_path / "adapted"))
    np.testing.assert_array_equal(loaded.predict(query.X), model.predict(query.X))
    relearned = MetaLearner.load(learner.save(tmp_path / "meta")).adapt(support)
    np.testing.assert_array_equal(relearned.predict(query.X), model.predict(query.X))
    assert read_manifest(tmp_path / "meta")["outcome"]["kind"] == "numeric"
