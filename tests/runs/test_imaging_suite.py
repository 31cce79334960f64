"""The imaging suite as a suite file: run folders, resume, page and the command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import metamed.runs.imaging as imaging
from metamed.cli import app
from metamed.data.registry import get_source
from metamed.errors import MetamedError
from metamed.runs.imaging import ImagingEntry, ImagingSuite, run_imaging_suite
from metamed.runs.suite import read_suite, run_suite

TINY = Path(__file__).with_name("imaging-tiny.toml")


def _loader(folder: Path):
    def load(dataset, sets, corruptions, size=28):
        spec = get_source(dataset)
        options = {"sets": sets, "corruptions": corruptions, "size": size}
        return spec.loader(folder, **spec.resolve_options(options))

    return load


def _tiny() -> ImagingSuite:
    suite = read_suite(TINY)
    assert isinstance(suite, ImagingSuite)
    return suite


def test_a_run_writes_each_setting_and_a_resumed_run_reuses_finished_cells(
    tiny_medmnist: Path, tmp_path: Path, monkeypatch
) -> None:
    suite = _tiny()
    load = _loader(tiny_medmnist)
    whole = run_imaging_suite(suite, tmp_path / "whole", load=load, command="CMD")
    for entry in suite.entries:
        names = {p.name for p in (tmp_path / "whole" / entry.folder).iterdir()}
        assert {"results.csv", "summary.csv", "paired.csv", "config.json", "jobs"} <= names
    results = pd.concat(
        pd.read_csv(tmp_path / "whole" / e.folder / "results.csv") for e in suite.entries
    )
    # Two held-out sets and one held-out corruption of both sets: four held-out tasks.
    assert results.groupby(["setting", "task"]).ngroups == 4
    assert set(results["method"]) == {m.id for m in suite.methods}
    assert len(results) == 4 * len(suite.methods) * 2 * 2 * 2  # tasks, methods, K, draws, metrics
    text = whole.text
    assert (tmp_path / "whole" / "imaging-tiny.md").read_text() == text
    assert "Regenerate: `CMD`" in text and "modified copy" in text and "Not finished" not in text
    assert "0.901" in text and "FHIST" in text and "## Which wins" in text
    assert set(whole.paired["method"]) == {"fomaml", "anil", "protonet"}
    assert set(whole.paired["baseline"]) <= {"linear-probe", "support-only"}

    stop_after = len(suite.methods) + 2  # the first setting and two cells of the second

    def interrupt(what: str, done: float, total: int) -> None:
        if done >= stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_imaging_suite(suite, tmp_path / "cut", load=load, progress=interrupt, command="CMD")
    first = suite.entries[0].folder
    assert (tmp_path / "cut" / first / "results.csv").is_file()  # a finished setting's tables
    assert not (tmp_path / "cut" / suite.entries[1].folder / "results.csv").exists()
    assert "Not finished in this run" in (tmp_path / "cut" / "imaging-tiny.md").read_text()

    calls = []
    real = imaging.run_imaging_protocol

    def counted(tasks, settings, methods, config, progress=None):
        calls.append((settings[0].name, *methods))
        return real(tasks, settings, methods, config, progress)

    monkeypatch.setattr(imaging, "run_imaging_protocol", counted)
    resumed = run_imaging_suite(suite, tmp_path / "cut", load=load, resume=True, command="CMD")
    total = len(suite.entries) * len(suite.methods)
    assert len(calls) == total - stop_after  # no finished cell is redone
    for entry in suite.entries:
        for table in ("results.csv", "summary.csv", "paired.csv"):
            assert (tmp_path / "cut" / entry.folder / table).read_bytes() == (
                tmp_path / "whole" / entry.folder / table
            ).read_bytes()
    assert resumed.text.split("## Times")[0] == text.split("## Times")[0]


@pytest.mark.parametrize(
    "edit, message",
    [
        (('name = "anil"', 'name = "anill"'), "Did you mean 'anil'"),
        (('test_corruptions = ["blur"]', 'test_corruptions = ["blurr"]'), "Did you mean 'blur'"),
        (('held_out = "breastmnist"', 'held_out = "breast"'), "not one of its sets"),
        (("hidden_sizes = [2]", "hidden_sizes = []"), "at least one convolution block"),
        (('network = "cnn"', 'network = "mlp"\nnetwrk = 1'), "Did you mean 'network'"),
        (('baselines = ["linear-probe"', 'baselines = ["linear-prob"'), "Did you mean"),
        (('train_corruptions = ["none"]', 'train_corruptions = ["blur"]'), "must include 'none'"),
    ],
)
def test_bad_suite_input_is_one_clear_error_before_any_work(edit, message, tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TINY.read_text().replace(*edit, 1))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", str(path), "--out", str(out), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_the_shipped_suite_reads_and_refuses_cli_settings(tmp_path: Path) -> None:
    suite = read_suite("imaging")
    assert isinstance(suite, ImagingSuite) and suite.protocol.shots == (1, 5, 10, 20)
    assert {"linear-probe", "pooled-finetune", "support-only"} <= set(suite.baselines)
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", "imaging", "--dataset", "synthetic", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "drop --dataset" in result.output


def test_cli_runs_the_tiny_suite_on_the_real_sets(data_dir: Path, need_dataset, tmp_path) -> None:
    """The CI run of the suite: the tiny suite file end to end on the real images."""
    need_dataset("medmnist-subset")
    page = tmp_path / "imaging.md"
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", str(TINY), "--data-dir", str(data_dir),
              "--out", str(tmp_path / "run"), "--page", str(page), "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"metamed benchmark --suite {TINY}" in page.read_text()
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert set(summary["task"]) == {
        "breastmnist", "pneumoniamnist", "breastmnist/blur", "pneumoniamnist/blur",
    }  # fmt: skip
    assert summary[summary["metric"] == "auroc"]["mean"].between(0, 1).all()


def test_a_suite_of_baselines_only_has_no_pairs(tiny_medmnist: Path, tmp_path: Path) -> None:
    suite = _tiny()
    only = tuple(m for m in suite.methods if m.id in suite.baselines)
    outputs = run_imaging_suite(
        replace(suite, methods=only, entries=suite.entries[:1]), tmp_path / "r",
        load=_loader(tiny_medmnist),
    )  # fmt: skip
    assert outputs.paired.empty
    assert "no meta-learner beats the best baseline" in outputs.text


def test_run_suite_refuses_an_executor_for_the_imaging_suite(tmp_path: Path) -> None:
    from metamed.runs.executors import ProcessExecutor

    with pytest.raises(MetamedError, match="one process"):
        run_suite(_tiny(), tmp_path / "x", executor=ProcessExecutor(2))


def test_a_3d_setting_runs_on_the_3d_cnn_and_a_2d_cnn_is_refused(
    tiny_medmnist: Path, tmp_path: Path
) -> None:
    suite = _tiny()
    volumes = ImagingEntry(
        sets=("adrenalmnist3d",), train_corruptions=("none", "blur"),
        test_corruptions=("resolution",), overrides={"network": "cnn3d"},
    )  # fmt: skip
    outputs = run_imaging_suite(
        replace(suite, entries=(volumes,)), tmp_path / "r", load=_loader(tiny_medmnist)
    )
    assert set(outputs.summary["task"]) == {"adrenalmnist3d/resolution"}
    assert set(outputs.summary["method"]) == {m.id for m in suite.methods}
    assert "cnn3d (2,)" in outputs.text
    with pytest.raises(MetamedError, match="not a square number of pixels"):
        replace(suite, entries=(replace(volumes, overrides={}),))


def test_the_device_is_recorded_per_cell_kept_out_of_the_keys_and_not_mixed_on_resume(
    tiny_medmnist: Path, tmp_path: Path, monkeypatch
) -> None:
    import json

    import torch

    suite = _tiny()
    small = replace(
        suite, entries=suite.entries[:1],
        methods=tuple(m for m in suite.methods if m.id in ("linear-probe", "support-only")),
    )  # fmt: skip
    out = tmp_path / "r"
    outputs = run_imaging_suite(small, out, load=_loader(tiny_medmnist), device="cpu")
    place = out / small.entries[0].folder
    infos = [json.loads(p.read_text())["info"] for p in place.glob("jobs/cell-*/job.json")]
    assert len(infos) == 2 and {i["device"] for i in infos} == {"cpu"}
    # a CPU run's identity and cell keys are what they were before --device existed
    identity = json.loads((place / "jobs" / "run.json").read_text())
    assert "device" not in identity
    keys = json.loads((place / "config.json").read_text())["methods"].values()
    assert not any("device" in key for key in keys)
    assert "Computed on: cpu" in outputs.text

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resolves, computes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(MetamedError, match="computed on cpu, this one would compute on cuda.*--device cpu"):
        run_imaging_suite(small, out, load=_loader(tiny_medmnist), resume=True, device="cuda")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_cli_device_cuda_without_a_gpu_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["benchmark", "--suite", str(TINY), "--out", str(out), "--device", "cuda",
              "--data-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "torch sees no CUDA GPU" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_64_cubed_setting_loads_its_own_file_into_its_own_folder(
    tiny_medmnist: Path, tmp_path: Path
) -> None:
    import json

    suite = _tiny()
    text = TINY.read_text() + (
        '\n[[datasets]]\nsets = ["adrenalmnist3d"]\nsize = 64\ntrain_corruptions = ["none"]\n'
        'test_corruptions = ["resolution"]\noverrides = { network = "cnn3d" }\n'
    )
    (tmp_path / "s.toml").write_text(text)
    volumes = read_suite(tmp_path / "s.toml").entries[-1]
    assert volumes.size == 64 and volumes.folder == "corruption-adrenalmnist3d-64"
    small = replace(
        suite, entries=(volumes,),
        methods=tuple(m for m in suite.methods if m.id in ("protonet", "support-only")),
        baseline_ids=("support-only",),
    )  # fmt: skip
    outputs = run_imaging_suite(small, tmp_path / "r", load=_loader(tiny_medmnist))
    place = tmp_path / "r" / volumes.folder
    assert json.loads((place / "config.json").read_text())["image_shape"] == [1, 64, 64, 64]
    assert json.loads((place / "jobs" / "run.json").read_text())["data"]["image_shape"] == [1, 64, 64, 64]
    assert set(outputs.summary["task"]) == {"adrenalmnist3d/resolution"}
    with pytest.raises(MetamedError, match="breastmnist has no 64-px copy"):
        ImagingEntry(sets=("breastmnist", "pneumoniamnist"), held_out="breastmnist", size=64)


def test_a_28_px_folder_identity_is_what_it_was_before_the_size_option() -> None:
    provenance = {"dataset": {"name": "medmnist", "options": {"sets": ["a"], "size": 28}}}
    assert imaging._data_identity(provenance)["dataset"]["options"] == {"sets": ["a"]}
    provenance["dataset"]["options"]["size"] = 64
    assert imaging._data_identity(provenance)["dataset"]["options"]["size"] == 64
