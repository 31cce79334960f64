"""The command as a new user meets it: --version, shell completion, usage without arguments."""

from __future__ import annotations

import importlib.metadata

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


def test_shell_completion_completes_commands_and_options():
    assert complete("metamed ben") == ["benchmark"]
    assert "--shots" in complete("metamed benchmark --sh")
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="metamed")
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
