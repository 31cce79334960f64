"""``benchmarks/meta_throughput.py``'s device and meta-batch options, at toy size on the CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "meta_throughput.py"


@pytest.fixture()
def bench(monkeypatch):
    """The script as a module, and a runner of its ``main`` with command-line arguments."""
    spec = importlib.util.spec_from_file_location("meta_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()

    def run(*argv: str) -> None:
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
        module.main()

    yield module, run
    torch.set_num_threads(threads)


def test_a_small_meta_batch_on_the_cpu_device_is_timed_and_recorded(bench, tmp_path):
    module, run = bench
    out = tmp_path / "mt.json"
    run(
        "--device", "cpu", "--meta-batch", "3", "--threads", "1", "--rounds", "1",
        "--block-s", "0.001", "--warmup", "1", "--no-compile", "--no-memory",
        "--variants", "engine-manual,engine-lowrank", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["config"]["device"] == "cpu" and report["machine"]["device"] == "cpu"
    assert report["config"]["meta_batch"] == 3
    assert {k.split("/")[0] for k in report["results"]} == {"loop", "engine-manual", "engine-lowrank"}
    for result in report["results"].values():
        assert result["max_abs_grad_diff_vs_loop"] < 1e-5 and result["it_per_s_best"] > 0
    page = out.with_suffix(".md").read_text()
    assert "device cpu (no GPU used)" in page and "meta-batch 3" in page
    assert "for information only" in page  # not the standard config: no verdict is claimed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_one_clear_line_and_exit_2(bench, tmp_path, capsys):
    _, run = bench
    out = tmp_path / "mt.json"
    with pytest.raises(SystemExit) as exc:
        run("--device", "cuda", "--out", str(out))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cpu" in err
    assert not out.exists()
