"""metamed.dosing: insulin dosing on simulated type-1-diabetes patients.

Batched UVA/Padova virtual patients (:mod:`~metamed.dosing.patient`), a Gymnasium
environment ``metamed/GlucoseDosing-v0`` and its batched vector version
(:mod:`~metamed.dosing.env`), clinical and PID controllers
(:mod:`~metamed.dosing.controllers`), glycaemic metrics (:mod:`~metamed.dosing.metrics`),
meta-learned personalisation from a few days of records
(:mod:`~metamed.dosing.personalise`) and the evaluation protocol / report
(:mod:`~metamed.dosing.evaluate`).  All patients are simulated, not real people.
"""

from metamed.dosing.controllers import (
    BasalBolusController,
    ControlInput,
    Controller,
    PIDController,
    StackedController,
)
from metamed.dosing.env import (
    ENV_ID,
    GlucoseDosingEnv,
    GlucoseVectorEnv,
    SimulationResult,
    rollout,
)
from metamed.dosing.evaluate import (
    CONTROLLER_NAMES,
    DoseProtocol,
    DoseResults,
    evaluate_controllers,
    run_dose,
)
from metamed.dosing.metrics import METRIC_NAMES, bg_risk, glycaemic_metrics, metrics_frame
from metamed.dosing.patient import UVAPadova, VirtualPatients, load_virtual_patients
from metamed.dosing.personalise import (
    PatientRecords,
    TherapyParameters,
    TherapyPersonaliser,
    leave_patients_out,
)

__all__ = [
    "BasalBolusController",
    "CONTROLLER_NAMES",
    "ControlInput",
    "Controller",
    "DoseProtocol",
    "DoseResults",
    "ENV_ID",
    "GlucoseDosingEnv",
    "GlucoseVectorEnv",
    "METRIC_NAMES",
    "PIDController",
    "PatientRecords",
    "SimulationResult",
    "StackedController",
    "TherapyParameters",
    "TherapyPersonaliser",
    "UVAPadova",
    "VirtualPatients",
    "bg_risk",
    "evaluate_controllers",
    "glycaemic_metrics",
    "leave_patients_out",
    "load_virtual_patients",
    "metrics_frame",
    "run_dose",
    "rollout",
]
