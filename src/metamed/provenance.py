"""Provenance: what produced a result (data checksums, config, seeds, versions)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import metamed
from metamed.threads import thread_record

__all__ = ["package_versions", "provenance_record"]

_PACKAGES = (
    "numpy",
    "pandas",
    "torch",
    "scikit-learn",
    "lightgbm",
    "safetensors",
    "scipy",
    "gymnasium",
    "matplotlib",
)


def package_versions() -> dict[str, str]:
    versions = {"metamed": metamed.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance_record(data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to reproduce a run, as one JSON-serialisable dict."""
    versions = package_versions()
    source = str(data.get("source", ""))
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "dataset": config.get("dataset"),
        "source": source,
        "licence": data.get("licence"),
        "citation": data.get("citation"),
        "checksums": data.get("checksums", {}),
        "simulated": "simulated" in source.lower() or "synthetic" in source.lower(),
        "seeds": {"seed": config.get("protocol", {}).get("seed")},
        "data": {k: v for k, v in data.items() if k != "truth"},  # ground truth can be large
        "config": config,
        "metamed_version": versions["metamed"],
        "versions": versions,
        "git_commit": _git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            **thread_record(),  # torch_threads, physical_cores, logical_cpus, OMP_NUM_THREADS
        },
    }
