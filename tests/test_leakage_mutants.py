"""``benchmarks/leakage_mutants.py`` keeps working as the code moves: every mutant applies."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "leakage_mutants.py"


def _mutants():
    spec = importlib.util.spec_from_file_location("leakage_mutants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.MUTANTS


@pytest.mark.parametrize("mutant", _mutants(), ids=lambda m: m.name)
def test_mutant_anchor_occurs_once(mutant) -> None:
    text = (ROOT / mutant.path).read_text()
    assert text.count(mutant.old) == 1, (
        f"mutant {mutant.name}: its anchor is no longer (uniquely) in {mutant.path}; update "
        "MUTANTS in benchmarks/leakage_mutants.py to the moved code and rerun it"
    )
