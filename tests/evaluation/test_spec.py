"""BenchmarkSpec: method ids, strict hyperparameters, and one spec from flags or a TOML file."""

from __future__ import annotations

import pytest

from metamed.errors import MetamedError
from metamed.evaluation.spec import BenchmarkSpec, DataSpec, MethodSpec
from metamed.runs import read_spec

HEART = DataSpec(dataset="uci-heart")


def test_method_id_names_the_non_default_hyperparameters():
    assert MethodSpec("maml").id == "maml"
    assert MethodSpec("maml", {"inner_lr": 0.1}).id == "maml"  # the default: not part of the id
    assert MethodSpec("maml", {"inner_lr": 0.05, "inner_steps": 3}).id == (
        "maml(inner_lr=0.05,inner_steps=3)"
    )
    assert MethodSpec("maml", {"inner_lr": 0.05}, label="maml-slow").id == "maml-slow"


def test_two_configurations_of_one_learner_in_one_run():
    spec = BenchmarkSpec(HEART, (MethodSpec("maml"), MethodSpec("maml", {"inner_lr": 0.05})))
    learners = spec.learners()
    assert list(learners) == ["maml", "maml(inner_lr=0.05)"]
    assert learners["maml"].inner_lr == 0.1 and learners["maml(inner_lr=0.05)"].inner_lr == 0.05
    with pytest.raises(MetamedError, match="Two methods have the id 'maml'"):
        BenchmarkSpec(HEART, (MethodSpec("maml"), MethodSpec("maml", {"inner_lr": 0.1})))


def test_a_hyperparameter_the_learner_does_not_take_names_those_that_do():
    with pytest.raises(MetamedError, match=r"protonet do\(es\) not accept 'meta_iterations'") as err:
        MethodSpec("protonet", {"meta_iterations": 5})
    message = str(err.value)
    assert "maml" in message and "reptile" in message  # the learners that do
    assert "Did you mean 'n_iterations'" in message


def test_overrides_apply_where_accepted_and_fail_when_nothing_accepts_them():
    spec = BenchmarkSpec(HEART, ("fomaml", "local-logreg"), overrides={"meta_iterations": 7})
    assert spec.overridden() == {"meta_iterations": ["fomaml"]}
    learners = spec.learners()
    assert learners["fomaml"].meta_iterations == 7
    assert list(learners) == ["fomaml", "local-logreg"]  # a run-wide override is not in the id
    with pytest.raises(MetamedError, match="learners that accept it: anil, fomaml, maml"):
        BenchmarkSpec(HEART, ("protonet", "pooled"), overrides={"meta_iterations": 7})


def test_spec_round_trips_and_file_equals_flags(tmp_path):
    (tmp_path / "patients.csv").write_text("x\n")
    (tmp_path / "spec.toml").write_text(
        """
shots = [10, 5]
draws = 3
seed = 2

[data]
table = "patients.csv"
task_col = "hospital"
outcome_col = "died"

[overrides]
meta_iterations = 20

[[methods]]
name = "fomaml"

[[methods]]
name = "fomaml"
label = "fomaml-3-steps"
params = { inner_steps = 3 }
"""
    )
    from_file = read_spec(tmp_path / "spec.toml")
    from_flags = BenchmarkSpec(
        DataSpec(table=str(tmp_path / "patients.csv"), task_col="hospital", outcome_col="died"),
        ("fomaml", MethodSpec("fomaml", {"inner_steps": 3}, label="fomaml-3-steps")),
        shots=(5, 10),
        draws=3,
        seed=2,
        overrides={"meta_iterations": 20},
    )
    assert from_file == from_flags
    assert BenchmarkSpec.from_dict(from_file.to_dict()) == from_file


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("draws = 2\n[data]\ndataset = 'uci-heart'\n", "no 'methods'"),
        ("methds = ['maml']\n[data]\n", "Did you mean 'methods'"),
        ("methods = ['mamll']\n[data]\n", "Did you mean 'maml'"),
        ("methods = ['maml']\nsplit = 'lso'\n[data]\n", "Did you mean 'loso'"),
        ("methods = ['maml']\ndraws = 'many'\n[data]\n", "draws must be a whole number"),
        ("methods = [", "not valid TOML"),
    ],
)
def test_bad_spec_files_get_one_clear_error(tmp_path, text, fragment):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(MetamedError, match=fragment):
        read_spec(path)


def test_sampler_reaches_the_protocol_and_round_trips():
    data = DataSpec(dataset="uci-heart")
    default = BenchmarkSpec(data=data, methods=("pooled",))
    assert "sampler" not in default.to_dict()  # earlier run folders' specs stay equal
    spec = BenchmarkSpec(data=data, methods=("pooled",), sampler="unconditioned")
    assert spec.protocol().sampler == "unconditioned"
    assert BenchmarkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(MetamedError, match="Did you mean 'unconditioned'"):
        BenchmarkSpec(data=data, methods=("pooled",), sampler="unconditional")


def test_set_params_addresses_a_label_or_a_lone_learner_name():
    data = DataSpec(dataset="synthetic")
    spec = BenchmarkSpec(
        data=data,
        methods=(MethodSpec("maml"), MethodSpec("maml", {"inner_lr": 0.05}, label="small"),
                 MethodSpec("pooled")),
    )  # fmt: skip
    tuned = spec.with_params({"small": {"inner_steps": 2}})
    assert tuned.methods[1].params == {"inner_lr": 0.05, "inner_steps": 2}
    assert tuned.methods[0] == spec.methods[0] and tuned.methods[2] == spec.methods[2]
    with pytest.raises(MetamedError, match="2 methods use maml .*give each a label"):
        spec.with_params({"maml": {"inner_steps": 2}})
    with pytest.raises(MetamedError, match="'poled', which is not run here. Did you mean 'pooled'"):
        spec.with_params({"poled": {"epochs": 2}})
