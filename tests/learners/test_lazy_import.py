"""``import metamed.learners`` loads no learner, and the registry still sees every one.

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

import metamed.learners as learners


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_importing_the_package_loads_neither_torch_nor_a_learner() -> None:
    loaded = _run(
        "import sys, metamed.learners; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m == 'sklearn' "
        "or m.startswith('metamed.learners.')))"
    )
    assert loaded == "[]"


def test_the_registry_lists_every_learner_before_any_is_used() -> None:
    # Through base alone, before any learner module has been imported by a name's use.
    names = _run("from metamed.learners.base import learner_names; print(','.join(learner_names()))")
    assert names.split(",") == sorted(learners.LEARNERS)
    assert len(names.split(",")) >= 20


def test_saved_models_load_in_a_fresh_interpreter(make_toy_tasks, tmp_path) -> None:
    # Loading looks the class up in the registry: it must not rely on the class's module
    # having been imported by something else first.
    tasks = make_toy_tasks(n_tasks=3, n_features=4, n_rows=30)
    learner = learners.make_learner("pooled-logreg").meta_fit(tasks[:2])
    learner.save(tmp_path / "learner")
    learner.adapt(tasks[2]).save(tmp_path / "adapted")
    classes = _run(
        "from metamed.learners.base import AdaptedModel, MetaLearner; "
        f"print(type(MetaLearner.load({str(tmp_path / 'learner')!r})).__name__, "
        f"type(AdaptedModel.load({str(tmp_path / 'adapted')!r})).__name__)"
    )
    assert classes.split() == [type(learner).__name__, type(learner.adapt(tasks[2])).__name__]


def test_unknown_names_still_fail_clearly() -> None:
    try:
        learners.this_is_not_a_learner  # noqa: B018
    except AttributeError as error:
        assert "this_is_not_a_learner" in str(error)
    else:
        raise AssertionError("an unknown attribute of metamed.learners did not raise")


def test_the_registries_are_complete_however_they_are_imported() -> None:
    # Read straight from base, in a fresh interpreter where no learner was used yet.
    listed = _run(
        "from metamed.learners.base import LEARNERS, ADAPTED_MODELS; "
        "print(len(LEARNERS), 'guard' in LEARNERS, 'GuardedModel' in ADAPTED_MODELS)"
    )
    assert listed == f"{len(learners.LEARNERS)} True True"
