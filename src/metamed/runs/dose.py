"""A whole dosing run: evaluate controllers on virtual patients, write the table and report.

The output folder is checked before simulating anything and written all or nothing
(:mod:`metamed.outputs`).  All patients are simulated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from metamed.dosing.evaluate import CONTROLLER_NAMES, DoseProtocol, evaluate_controllers
from metamed.errors import MetamedValueError
from metamed.outputs import check_output_place, staged_output
from metamed.report.dosing import render_dose_report

__all__ = ["run_dose"]


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
) -> Path:
    """Evaluate controllers and write ``report.html`` + ``per_patient_day.csv``.

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
    pathlib.Path
        Path of the HTML report.
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
    with staged_output(out) as staging:
        results.per_patient_day.to_csv(staging / "per_patient_day.csv", index=False)
        (staging / "report.html").write_text(render_dose_report(results), encoding="utf-8")
    return out / "report.html"
