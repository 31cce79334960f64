"""A whole dosing run: evaluate controllers on virtual patients, write the table and report.

The output folder is checked before simulating anything and written all or nothing
(:mod:`metamed.outputs`).  All patients are simulated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from metamed.dosing.evaluate import (
    CONTROLLER_NAMES,
    DoseProtocol,
    evaluate_controllers,
    summary_table,
)
from metamed.errors import MetamedValueError
from metamed.outputs import check_output_place, staged_output
from metamed.provenance import provenance_record
from metamed.report.dosing import render_dose_report

__all__ = ["DoseOutputs", "run_dose"]

_SOURCE = "simulated: UVA/Padova model, the 30 virtual patients of simglucose (MIT)"


@dataclass(frozen=True)
class DoseOutputs:
    """What a dosing run wrote, and its summary for the screen.

    Attributes
    ----------
    report_html, per_patient_day_csv, summary_csv, config_json : pathlib.Path
        The files in the output folder (``config.json``: protocol, controllers,
        patients, timings and the machine, threads included).
    summary : pandas.DataFrame
        Mean metrics per controller and age group (``"all"`` included), as ``summary.csv``.
    descriptions : dict of str to str
        What each controller setting is (its registry entry's description).
    """

    report_html: Path
    per_patient_day_csv: Path
    summary_csv: Path
    config_json: Path
    summary: pd.DataFrame
    descriptions: dict[str, str] = field(default_factory=dict)


def run_dose(
    controllers: Sequence[str] = CONTROLLER_NAMES,
    patients: str | Sequence[str] | None = None,
    days: int | None = None,
    seed: int = 0,
    out_dir: str | Path = "dose_report",
    progress: Callable[[str], None] | None = None,
    quick: bool = False,
    advance: Callable[[str, int, int], None] | None = None,
    force: bool = False,
) -> DoseOutputs:
    """Evaluate controllers and write ``report.html``, ``per_patient_day.csv``,
    ``summary.csv`` and ``config.json``.

    Parameters
    ----------
    controllers : sequence of str
        Names registered in :mod:`metamed.dosing.registry` (the built-ins:
        :data:`CONTROLLER_NAMES`).
    patients : str, sequence of str or None
        Age groups and/or names (each patient at most once), or None for all 30 virtual
        patients.
    days : int, optional
        One-day evaluation episodes per patient and controller (default 10; not with
        ``quick``).
    seed : int
        Seed of the first evaluation episode.
    out_dir : path
        Output folder (created), checked before simulating anything and written all or
        nothing (:mod:`metamed.outputs`).
    progress : callable, optional
        Receives one-line progress messages (phases, the run-time estimate).
    quick : bool
        Demo mode: 1 evaluation day and 1 record day (seconds instead of a minute);
        cannot be combined with ``days``.
    advance : callable, optional
        ``advance("days", done, total)`` after each evaluation day.
    force : bool
        Replace the files of a previous run in ``out_dir`` (otherwise a folder holding
        files is refused).

    Returns
    -------
    DoseOutputs
        The files written and the summary table.
    """
    if quick and days is not None:
        raise MetamedValueError(
            f"quick runs 1 evaluation day, so days={days} would be ignored; give either "
            "--quick or --days, not both."
        )
    out = check_output_place(out_dir, force=force)
    protocol = DoseProtocol(
        days=1 if quick else (10 if days is None else int(days)),
        seed=int(seed),
        record_days=1 if quick else 3,
    )
    results = evaluate_controllers(controllers, patients, protocol, progress, advance=advance)
    summary = summary_table(results)
    run_config = {
        "dataset": "simglucose-patients",
        "protocol": asdict(protocol),
        "controllers": sorted(set(results.per_patient_day["controller"])),
        "patients": sorted(set(results.per_patient_day["patient"])),
        "timings_s": results.timings_s,
    }
    provenance = provenance_record(data={"source": _SOURCE}, config=run_config)
    with staged_output(out) as staging:
        (staging / "config.json").write_text(json.dumps(provenance, indent=2, default=str))
        results.per_patient_day.to_csv(staging / "per_patient_day.csv", index=False)
        summary.to_csv(staging / "summary.csv", index=False)
        (staging / "report.html").write_text(render_dose_report(results), encoding="utf-8")
    return DoseOutputs(
        report_html=out / "report.html",
        per_patient_day_csv=out / "per_patient_day.csv",
        summary_csv=out / "summary.csv",
        config_json=out / "config.json",
        summary=summary,
        descriptions=dict(results.descriptions),
    )
