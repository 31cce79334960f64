"""The ``metamed dose`` command under bad or unusual input (simulated patients).

Each check is what a careful user ran into (issue 13): duplicated patients counted
twice, no warning before a very long run and one log line per simulated day, ``--quick``
silently overriding ``--days``, patient names offered for a mistyped age group, and a
matplotlib warning on an ordinary run.
"""

from __future__ import annotations

import re
import time
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from metamed.cli import app
from metamed.dosing import evaluate
from metamed.dosing.evaluate import DoseProtocol, evaluate_controllers
from metamed.dosing.patient import load_virtual_patients
from metamed.errors import MetamedValueError, UnknownNameError
from metamed.runs import run_dose

runner = CliRunner()


def _clean_error(result, *fragments: str) -> str:
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_duplicate_patients_are_refused_before_any_work(tmp_path) -> None:
    out = tmp_path / "dose"
    result = runner.invoke(
        app, ["dose", "--patients", "adult#001,child#002,adult#001", "--quick", "--out", str(out)]
    )
    text = _clean_error(result, "adult#001", "twice")
    assert "personalisation" not in text  # refused before the simulation started
    assert not out.exists()
    # an age group and one of its members overlap too
    result = runner.invoke(
        app, ["dose", "--patients", "adult,adult#003", "--quick", "--out", str(out)]
    )
    _clean_error(result, "adult#003", "twice")
    with pytest.raises(MetamedValueError, match="twice"):
        evaluate_controllers(["basal_bolus"], ["child#001", "child#001"])


def test_quick_and_days_together_are_rejected(tmp_path) -> None:
    out = tmp_path / "dose"
    result = runner.invoke(app, ["dose", "--quick", "--days", "5", "--out", str(out)])
    _clean_error(result, "--quick", "--days")
    assert not out.exists()
    with pytest.raises(MetamedValueError, match="quick"):
        run_dose(["pid"], "adult#001", days=5, quick=True, out_dir=out)


@pytest.mark.parametrize(("typo", "suggestion"), [("adlt", "adult"), ("childs", "child")])
def test_mistyped_age_group_suggests_age_groups(tmp_path, typo: str, suggestion: str) -> None:
    result = runner.invoke(app, ["dose", "--patients", typo, "--out", str(tmp_path / "d")])
    text = _clean_error(result, f"Did you mean '{suggestion}'?")
    assert "#0" not in text  # no patient names offered for an age-group typo
    with pytest.raises(UnknownNameError, match=f"Did you mean '{suggestion}'"):
        load_virtual_patients(typo)


def test_mistyped_patient_name_still_suggests_patient_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'adult#003'"):
        load_virtual_patients(["adlut#003"])


def test_age_groups_and_names_mix_in_a_list() -> None:
    vp = load_virtual_patients(["child", "adult#004"])
    assert vp.names == tuple(f"child#{i:03d}" for i in range(1, 11)) + ("adult#004",)


def test_long_run_prints_an_estimate_first_and_progress_not_per_day(tmp_path, monkeypatch) -> None:
    import metamed.cli

    # A log line at most every hour: on a machine too loaded to simulate a day within the
    # usual few seconds, the log must still not get one line per day.
    monkeypatch.setattr(metamed.cli.progress_bar.__wrapped__, "__defaults__", (3600.0,))
    days = 4
    result = runner.invoke(
        app,
        [
            "dose",
            "--controllers",
            "basal_bolus",
            "--patients",
            "adult#002",
            "--days",
            str(days),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    estimate = [i for i, line in enumerate(lines) if "estimated" in line]
    progress = [i for i, line in enumerate(lines) if re.search(rf"\b\d+/{days}\b", line)]
    assert estimate and progress, result.output
    assert estimate[0] < progress[0]  # the estimate comes before the work it estimates
    # a log (not a terminal) gets a line at most every every_s seconds (and the last one)
    assert len(progress) < days, result.output


def test_estimate_is_close_to_the_time_taken(monkeypatch) -> None:
    # CPU time for both the estimate and the measurement: on a loaded shared machine wall
    # time swings by several times within seconds, CPU time much less
    monkeypatch.setattr(evaluate, "_clock", time.process_time)
    messages: list[str] = []
    res = evaluate_controllers(
        ["basal_bolus", "pid"],
        ["adult#001", "adolescent#001"],
        DoseProtocol(days=3),
        progress=messages.append,
    )
    line = next(m for m in messages if "estimated" in m)
    value, unit = re.search(r"estimated (?:run time )?([\d.]+) (s|min|h)\b", line).groups()
    estimate_s = float(value) * {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]
    # the estimate is for planning: right to within a factor of 2.5
    assert res.timings_s["evaluation_s"] / 2.5 < estimate_s < 2.5 * res.timings_s["evaluation_s"]


def test_ordinary_dose_run_emits_no_warning(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_dose(["basal_bolus"], "adult#001", days=1, out_dir=tmp_path)


def test_dose_prints_its_metric_table_and_names_the_oracle(tmp_path) -> None:
    out = tmp_path / "d"
    args = ["dose", "--controllers", "basal_bolus,pid", "--patients", "adult#001"]
    result = runner.invoke(app, [*args, "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    overall = summary[summary["age_group"] == "all"].set_index("controller")
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for controller in ("basal_bolus", "pid"):
        row = overall.loc[controller]
        printed = lines[controller].split()[1:]
        expected = [f"{row[m]:.1f}" for m in ("tir_pct", "below_70_pct", "below_54_pct")]
        assert printed[1:4] == expected, result.output
    assert "basal_bolus: oracle" in result.output
