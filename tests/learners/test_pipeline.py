"""`Pipeline`: raw patient rows in, the same predictions as preprocessing + model by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from metamed.data import make_synthetic_cohort
from metamed.data.preprocess import Preprocessor, outcome_array
from metamed.errors import ArtifactError, MetamedTypeError, MetamedValueError
from metamed.learners import MetaLearner, Pipeline, make_learner
from metamed.tasks import Task, TaskSet, make_tasks


@pytest.fixture(scope="module")
def setup():
    cohort = make_synthetic_cohort(n_tasks=5, n_per_task=80, n_features=4, seed=3)
    cohort = cohort.with_schema(replace(cohort.schema, units={"x01": "mg/dL"}))
    taskset = TaskSet(cohort)
    train_names, new_site = taskset.names[:4], taskset.names[4]
    prep = Preprocessor(cohort.schema).fit(taskset.frames(train_names))
    learner = make_learner(
        "maml", hidden_sizes=(8,), meta_iterations=4, k_support=6, n_query=10, meta_batch_size=2
    ).meta_fit(make_tasks(taskset, train_names, prep))
    rows = taskset.frame(new_site).reset_index(drop=True)
    # a support set holding both classes, then the rest as new patients
    order = np.argsort(rows[cohort.schema.outcome].to_numpy(), kind="stable")
    support_idx = np.r_[order[:6], order[-6:]]
    support = rows.iloc[support_idx]
    patients = rows.drop(index=support_idx)
    return cohort, prep, learner, support, patients


def by_hand(setup) -> np.ndarray:
    cohort, prep, learner, support, patients = setup
    task = Task("s", prep.transform(support), outcome_array(support, cohort.schema))
    return learner.adapt(task).predict_proba(prep.transform(patients))


def test_predict_proba_on_raw_rows_matches_preprocessing_by_hand(setup) -> None:
    cohort, prep, learner, support, patients = setup
    site = Pipeline(prep, learner).adapt(support)
    p = site.predict_proba(patients)
    np.testing.assert_array_equal(p, by_hand(setup))
    np.testing.assert_array_equal(site.predict(patients), (p >= 0.5).astype(np.int64))


def test_missing_column_is_named_and_extra_columns_are_ignored(setup) -> None:
    cohort, prep, learner, support, patients = setup
    site = Pipeline(prep, learner).adapt(support)
    with pytest.raises(
        MetamedValueError, match="lack input column 'x02'.*Missing: x02, risk_group"
    ):
        site.predict_proba(patients.drop(columns=["x02", "risk_group"]))
    noisy = patients.assign(note="seen in clinic")[["note", *reversed(patients.columns)]]
    assert site.check_columns(noisy) == ["note", "outcome", "site"]
    np.testing.assert_array_equal(site.predict_proba(noisy), site.predict_proba(patients))
    with pytest.raises(MetamedTypeError, match="DataFrame"):
        site.predict_proba(patients.to_numpy())


def test_meta_and_adapted_pipelines_round_trip(setup, tmp_path) -> None:
    cohort, prep, learner, support, patients = setup
    provenance = {k: v for k, v in cohort.provenance.items() if k != "truth"}
    meta = Pipeline(prep, learner, provenance)
    loaded_meta = Pipeline.load(meta.save(tmp_path / "meta"))
    np.testing.assert_array_equal(
        loaded_meta.adapt(support).predict_proba(patients), by_hand(setup)
    )
    site = meta.adapt(support)
    loaded = Pipeline.load(site.save(tmp_path / "site"))
    np.testing.assert_array_equal(loaded.predict_proba(patients), site.predict_proba(patients))
    assert loaded.provenance["source"] == cohort.provenance["source"]
    assert loaded.provenance["adapted_from"] == {"learner": "maml", "support_rows": 12}
    # The learner alone loads from the pipeline's folder too.
    assert type(MetaLearner.load(tmp_path / "meta")) is type(learner)


def test_manifest_describes_the_inputs(setup, tmp_path) -> None:
    cohort, prep, learner, support, patients = setup
    folder = Pipeline(prep, learner).save(tmp_path / "meta")
    manifest = json.loads((folder / "manifest.json").read_text())
    columns = {c["name"]: c for c in manifest["features"]["columns"]}
    assert list(columns) == list(cohort.schema.features)
    assert columns["x01"]["type"] == "numeric" and columns["x01"]["unit"] == "mg/dL"
    assert columns["risk_group"]["categories"] == prep.categories_["risk_group"]
    assert manifest["features"]["inputs"] == prep.feature_names_
    assert manifest["outcome"] == {"kind": "binary", "column": "outcome", "unit": None}
    assert manifest["learner"]["hyperparameters"]["meta_iterations"] == 4


def test_predicting_needs_an_adapted_model(setup) -> None:
    cohort, prep, learner, support, patients = setup
    with pytest.raises(MetamedTypeError, match=r"adapt\(support_rows\)"):
        Pipeline(prep, learner).predict_proba(patients)


def test_mismatched_preprocessor_is_refused(setup) -> None:
    cohort, prep, learner, support, patients = setup
    narrow = Preprocessor(replace(cohort.schema, categorical=())).fit(patients)
    expected = (
        f"takes {prep.n_features_out} inputs but the preprocessor makes {narrow.n_features_out}"
    )
    with pytest.raises(MetamedValueError, match=expected):
        Pipeline(narrow, learner)


def test_model_without_preprocessing_is_not_a_pipeline(setup, tmp_path) -> None:
    learner = setup[2]
    with pytest.raises(ArtifactError, match="without preprocessing"):
        Pipeline.load(learner.save(tmp_path / "bare"))


def test_support_rows_need_the_outcome(setup) -> None:
    cohort, prep, learner, support, patients = setup
    with pytest.raises(MetamedValueError, match="Outcome column 'outcome'"):
        Pipeline(prep, learner).adapt(pd.DataFrame(support.drop(columns=["outcome"])))
