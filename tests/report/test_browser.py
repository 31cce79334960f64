"""Both reports in headless Chromium at desktop and phone widths (marked ``browser``).

Runs ``benchmarks/check_reports_browser.py`` (a quick benchmark and dosing run, then
Chromium at 1280 and 390 px): nothing may stick out of the window. Not run by default
(it needs Debian's ``chromium`` and about a minute): ``pytest -m browser``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "check_reports_browser.py"


def test_reports_fit_desktop_and_phone_widths(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("check_reports_browser", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    if script.chromium() is None:
        pytest.skip("needs headless Chromium: apt-get install chromium")
    assert script.main(["--out", str(tmp_path)]) == 0
    measured = json.loads((tmp_path / "browser_check.json").read_text())
    assert set(measured) == {"benchmark", "dosing"}
    for by_width in measured.values():
        assert by_width["phone"]["window"] == 390  # the frame, not the 500 px minimum window
        assert all(Path(m["screenshot"]).stat().st_size > 10_000 for m in by_width.values())
