"""simglucose virtual type-1-diabetes patients (simulated, not real patients).

Parameter sets of the 30 in-silico patients (10 adolescents, 10 adults, 10 children) of
the UVA/Padova type-1-diabetes simulator as re-implemented in the Python package
``simglucose`` (``vpatient_params.csv``: body weight, basal glucose and insulin,
absorption and clearance constants, initial state), and each patient's insulin-therapy
constants (``Quest.csv``: carbohydrate ratio, correction factor, age, total daily
insulin).  Model parameters, never evidence about real people.

Spec only, no loader yet (``metamed.dosing`` ships its own parameter files in
``metamed/dosing/params/`` to drive its simulator).  There is no outcome column:
outcomes come from running the simulator, one virtual patient per task, and ``CR``,
``CF`` and ``TDI`` are the reference dosing an adaptive policy should recover.  Bump ``SPEC.version`` with any
change to the data it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="simglucose-patients",
    version=1,
    title="simglucose virtual type-1-diabetes patients (simulated)",
    description=(
        "Parameter sets of 30 in-silico UVA/Padova patients plus insulin-therapy constants; "
        "each virtual patient is a task. Simulated, not real patients."
    ),
    licence="MIT (simglucose)",
    citation=(
        "Xie J. simglucose v0.2.11, https://github.com/jxx123/simglucose; Dalla Man C, et al. "
        "The UVA/PADOVA type 1 diabetes simulator: new features. J Diabetes Sci Technol "
        "2014;8:26-34."
    ),
    homepage="https://github.com/jxx123/simglucose",
    folder="simglucose-virtual-patients",
    files=read_files(__package__, "simglucose_patients.files.json"),
    n_patients=30,
    n_tasks=30,
)
