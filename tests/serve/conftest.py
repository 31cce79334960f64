"""A small multi-hospital table and a model meta-trained on it, shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metamed.cli import app

N_SITES = 5


def hospital_rows(n_sites: int = N_SITES, n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Hospitals sharing a risk model with their own intercepts; heart rates are positive."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_sites):
        age = rng.normal(62, 12, n).round()
        heart_rate = np.abs(rng.normal(88, 18, n)).round()
        lactate = np.abs(rng.normal(2.0, 1.0, n)).round(1)
        ward = rng.choice(["icu", "medical", "surgical"], n)
        score = (
            0.04 * (age - 62) + 0.03 * (heart_rate - 88) + 0.8 * (lactate - 2) + rng.normal(0, 0.5)
        )
        score += np.where(ward == "icu", 0.7, 0.0) - 0.7
        died = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "age": age,
                    "heart_rate": heart_rate,
                    "lactate": lactate,
                    "ward": ward,
                    "hospital": f"h{s}",
                    "died": died,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


TRAIN_TOML = """
seed = 0

[data]
table = "train.csv"
task_col = "hospital"
outcome_col = "died"
categorical_cols = ["ward"]

[method]
name = "fomaml"
params = { meta_iterations = 10, hidden_sizes = [16], meta_batch_size = 4 }
"""


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory) -> Path:
    """A folder with train.csv (4 hospitals), the new hospital's support.csv and
    patients.csv, train.toml, and models/meta: the model `metamed train` made."""
    root = tmp_path_factory.mktemp("deploy")
    rows = hospital_rows()
    rows[rows.hospital != "h4"].to_csv(root / "train.csv", index=False)
    new_site = rows[rows.hospital == "h4"].reset_index(drop=True)
    new_site.iloc[:60].to_csv(root / "support.csv", index=False)
    patients = (
        new_site.iloc[60:].drop(columns=["died"]).assign(patient=[f"p{i}" for i in range(60)])
    )
    patients.to_csv(root / "patients.csv", index=False)
    new_site.iloc[60:].to_csv(root / "outcomes.csv", index=False)
    (root / "train.toml").write_text(TRAIN_TOML)
    result = CliRunner().invoke(
        app, ["train", "--config", str(root / "train.toml"), "--out", str(root / "models" / "meta")]
    )
    assert result.exit_code == 0, result.output
    return root


# -- a real server on loopback ------------------------------------------------------------
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import IO  # noqa: E402

import httpx  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """`metamed serve` in its own process, on 127.0.0.1."""

    models: Path
    url: str
    process: subprocess.Popen
    log: IO[bytes]

    def kill(self) -> None:
        """SIGKILL: no cleanup code of the server runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()


def start_server(models: Path, timeout_s: float = 120.0, workers: int = 1) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-c", "from metamed.cli import main; main()", "serve",
               "--models", str(models), "--port", str(port), "--max-rows", "500",
               "--workers", str(workers)]  # fmt: skip
    log = open(models.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"the server exited: {Path(log.name).read_text()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return Server(models, url, process, log)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    process.wait(timeout=30)
    log.close()
    raise RuntimeError(f"the server did not answer within {timeout_s} s")


@pytest.fixture(scope="session")
def launch():
    """``launch(models_dir) -> Server``: `metamed serve` on a free loopback port."""
    return start_server
