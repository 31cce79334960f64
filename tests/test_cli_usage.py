"""The command as a new user meets it: --version, shell completion, usage without arguments."""

from __future__ import annotations

import importlib.metadata
import json

from typer.testing import CliRunner

import metamed
from metamed.cli import app

runner = CliRunner()


def complete(words: str) -> list[str]:
    """What bash completion offers for the last of ``words`` (typer's completion protocol)."""
    env = {
        "_METAMED_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = runner.invoke(app, [], prog_name="metamed", env=env)
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_version_names_metamed_python_and_the_torch_build():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    line = result.output.strip()
    assert line.startswith(f"metamed {metamed.__version__} (Python ")
    assert f"torch {importlib.metadata.version('torch')}" in line


def test_shell_completion_completes_commands_and_options(monkeypatch):
    import typer.completion

    assert complete("metamed ben") == ["benchmark"]
    assert "--shots" in complete("metamed benchmark --sh")
    # --show-completion is a flag that detects the shell from the parent processes, which
    # finds none under nohup or CI runners; the user's shell here is bash.
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    script = runner.invoke(app, ["--show-completion"], prog_name="metamed")
    assert "complete -o default -F _metamed_completion metamed" in script.output


def test_threads_are_applied_and_recorded(tmp_path):
    import json

    import torch

    out = tmp_path / "dose"
    args = ["dose", "--controllers", "pid", "--patients", "adult#001", "--quick"]
    try:
        result = runner.invoke(app, [*args, "--threads", "2", "--out", str(out)])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # the suite's setting (conftest)
    assert result.exit_code == 0, result.output
    machine = json.loads((out / "config.json").read_text())["machine"]
    assert machine["torch_threads"] == 2
    assert machine["OMP_NUM_THREADS"] == "1"  # where the default would have come from
    assert machine["physical_cores"] >= 1


def test_bad_omp_num_threads_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    out = tmp_path / "dose"
    result = runner.invoke(app, ["dose", "--quick", "--out", str(out)])
    assert result.exit_code == 2
    assert "OMP_NUM_THREADS must be a positive whole number" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_every_long_command_takes_threads():
    for command in ("benchmark", "demo", "dose", "train", "adapt"):
        result = runner.invoke(app, [command, "--help"])
        assert "--threads" in result.output, command


def test_benchmark_without_data_prints_usage_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["benchmark"], prog_name="metamed")
    assert result.exit_code == 2
    assert "benchmark needs data: --dataset NAME" in result.output
    assert "Usage: metamed benchmark [OPTIONS]" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing written


def test_param_flag_reaches_the_learner_and_the_run_record(tmp_path):
    out = tmp_path / "run"
    args = ["benchmark", "--dataset", "synthetic", "--methods", "maml", "--shots", "5",
            "--draws", "1", "--meta-iterations", "2", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, [*args, "--param", "maml.inner_steps=2", "--param",
                                 "maml.hidden_sizes=[8]"])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    (method,) = config["config"]["spec"]["methods"]
    assert method == {"name": "maml", "params": {"inner_steps": 2, "hidden_sizes": [8]}}


def test_param_mistakes_are_one_line_with_did_you_mean_and_write_nothing(tmp_path):
    base = ["benchmark", "--dataset", "synthetic", "--methods", "maml,pooled"]
    cases = {
        "mamll.inner_lr=0.1": "--param names method 'mamll', which is not run here. "
        "Did you mean 'maml'? Methods: maml, pooled.",
        "maml.inner_l=0.1": "maml do(es) not accept 'inner_l' (no learner accepts it). "
        "Did you mean 'inner_lr'?",
        "pooled.inner_lr=0.1": "pooled do(es) not accept 'inner_lr' (learners that accept it:",
        "maml.inner_lr": "--param must look like METHOD.NAME=VALUE",
        "inner_lr=0.1": "--param must look like METHOD.NAME=VALUE",
    }
    for i, (param, message) in enumerate(cases.items()):
        out = tmp_path / f"run{i}"
        result = runner.invoke(app, [*base, "--param", param, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert message in " ".join(result.output.split()), result.output
        assert not out.exists()


def test_datasets_json_lists_every_dataset_with_its_files_and_presence(tmp_path):
    from metamed.data import DATASETS, get_source

    result = runner.invoke(app, ["datasets", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["name"] for r in records] == list(DATASETS)
    for record in records:
        spec = get_source(record["name"])
        assert record["present"] == ("built-in" if not spec.files else "no")  # empty folder
        assert [f["sha256"] for f in record["files"]] == [f.sha256 for f in spec.files]
        assert record["loadable"] == spec.loadable
    one = json.loads(runner.invoke(app, ["datasets", "uci-heart", "--json"]).output)
    assert one["name"] == "uci-heart" and {o["name"] for o in one["options"]} >= {"sites"}
