"""docs/deploy.md's walkthrough, run as written: every ```bash block, in order, in one shell.

Only the port is changed (to a free one), so that the test cannot collide with a
service already listening on 8765.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text()
    return "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough uses curl")
def test_deploy_walkthrough_runs_as_written(tmp_path):
    script = walkthrough()
    assert script.count("PORT=8765") == 1
    script = script.replace("PORT=8765", f"PORT={free_port()}")
    # python and metamed from this interpreter's environment, metamed's code from this tree
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    guard = 'trap \'[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; true\' EXIT\n'
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", guard + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    risks = pd.read_csv(tmp_path / "risks.csv")
    assert len(risks) == 100 and list(risks.columns) == [
        "row",
        "risk",
        "prediction_set",
        "coverage",
    ]
    adapted = json.loads((tmp_path / "adapted.json").read_text())
    assert adapted["created"] and adapted["support_rows"] == 100
    assert (tmp_path / "models" / adapted["model"] / "manifest.json").is_file()
    out = result.stdout
    assert '"predictions":[{"risk":' in out  # the one-patient prediction
    assert '"status":422' in out and '"field":"x01"' in out  # the refused one
    for fragment in ("held-out evaluation", "predict", "adapt", "finished", "ehr"):
        assert fragment in out, fragment
