"""The layering contract (``[tool.importlinter]`` in pyproject.toml) holds, and it would
catch the back edges that used to hide in function-level imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest

pytest.importorskip("importlinter", reason="import-linter is installed by the dev extra")

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """Run the project's contract over the ``metamed`` package found in ``src``."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layers_contract_is_kept():
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = len(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
    assert f"{contracts} kept, 0 broken" in result.stdout


#: (module, late import it gains, the importer -> imported pair the linter must report)
BACK_EDGES = [
    ("data/cohort.py", "from metamed.tasks import TaskSet", "metamed.data.cohort -> metamed.tasks"),
    ("evaluation/metrics.py", "from metamed.report import write_report", "metamed.evaluation.metrics -> metamed.report"),
    ("evaluation/statistics.py", "from metamed.dosing import rollout", "metamed.evaluation.statistics -> metamed.dosing"),
    ("learners/base.py", "import metamed.cli", "metamed.learners.base -> metamed.cli"),
    ("outputs.py", "import metamed.runs", "metamed.outputs -> metamed.runs"),
]  # fmt: skip


def test_function_level_back_edges_break_the_contract(tmp_path):
    shutil.copytree(
        ROOT / "src" / "metamed", tmp_path / "metamed", ignore=shutil.ignore_patterns("__pycache__")
    )
    for module, late_import, _ in BACK_EDGES:
        target = tmp_path / "metamed" / module
        target.write_text(
            target.read_text() + f"\n\ndef _late():\n    {late_import}  # noqa\n    return None\n"
        )
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for _, _, edge in BACK_EDGES:
        assert edge in result.stdout, result.stdout
