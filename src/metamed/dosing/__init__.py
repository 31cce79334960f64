"""metamed.dosing: insulin dosing on simulated type-1-diabetes patients.

Batched UVA/Padova virtual patients (:mod:`~metamed.dosing.patient`), a Gymnasium
environment ``metamed/GlucoseDosing-v0`` and its batched vector version
(:mod:`~metamed.dosing.env`), patients as meta-RL tasks (:mod:`~metamed.dosing.tasks`), clinical and PID controllers
(:mod:`~metamed.dosing.controllers`), glycaemic metrics (:mod:`~metamed.dosing.metrics`),
meta-learned personalisation from a few days of records
(:mod:`~metamed.dosing.personalise`), a fully closed loop without meal announcement
adapted to the patient (:mod:`~metamed.dosing.closedloop`) and the evaluation protocol and its tables
(:mod:`~metamed.dosing.evaluate`); the report is :mod:`metamed.report.dosing` and a
whole run that writes files :func:`metamed.runs.run_dose`.  The simulator's building blocks are re-exported:
CGM sensor and pump (:mod:`~metamed.dosing.devices`), meal scenarios
(:mod:`~metamed.dosing.scenario`); the controllers the protocol knows by name are in
:mod:`~metamed.dosing.registry`.  There is one closed loop, the environment's
(:func:`~metamed.dosing.env.rollout`).  All patients are simulated, not real people.
"""

from metamed.dosing.closedloop import ClosedLoopController, ClosedLoopParameters
from metamed.dosing.controllers import (
    BasalBolusController,
    ControlInput,
    Controller,
    LowGlucoseSuspend,
    PIDController,
    StackedController,
    tdi_rule_therapy,
)
from metamed.dosing.devices import (
    CGM_SENSORS,
    INSULIN_PUMPS,
    CGMSensor,
    CGMSensorParams,
    InsulinPump,
    InsulinPumpParams,
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
    g2p2c_scoring_table,
)
from metamed.dosing.metrics import METRIC_NAMES, bg_risk, glycaemic_metrics, metrics_frame
from metamed.dosing.patient import (
    PatientState,
    Trajectory,
    UVAPadova,
    VirtualPatients,
    load_virtual_patients,
)
from metamed.dosing.personalise import (
    PatientRecords,
    TherapyParameters,
    TherapyPersonaliser,
    leave_patients_out,
)
from metamed.dosing.registry import (
    ControllerContext,
    ControllerEntry,
    controller_names,
    get_controller,
    register_controller,
)
from metamed.dosing.scenario import (
    G2P2C_MEAL_SLOTS,
    MINUTES_PER_DAY,
    FixedMealScenario,
    G2P2CMealScenario,
    MealScenario,
)
from metamed.dosing.tasks import PatientSampler, PatientSamplingEnv

__all__ = [
    "BasalBolusController",
    "bg_risk",
    "CGM_SENSORS",
    "CGMSensor",
    "CGMSensorParams",
    "ClosedLoopController",
    "ClosedLoopParameters",
    "ControlInput",
    "ControllerContext",
    "ControllerEntry",
    "controller_names",
    "Controller",
    "CONTROLLER_NAMES",
    "DoseProtocol",
    "DoseResults",
    "ENV_ID",
    "evaluate_controllers",
    "FixedMealScenario",
    "G2P2C_MEAL_SLOTS",
    "g2p2c_scoring_table",
    "G2P2CMealScenario",
    "get_controller",
    "GlucoseDosingEnv",
    "GlucoseVectorEnv",
    "glycaemic_metrics",
    "INSULIN_PUMPS",
    "InsulinPump",
    "InsulinPumpParams",
    "leave_patients_out",
    "load_virtual_patients",
    "LowGlucoseSuspend",
    "MealScenario",
    "METRIC_NAMES",
    "metrics_frame",
    "MINUTES_PER_DAY",
    "PatientRecords",
    "PatientSampler",
    "PatientSamplingEnv",
    "PatientState",
    "PIDController",
    "register_controller",
    "rollout",
    "SimulationResult",
    "StackedController",
    "tdi_rule_therapy",
    "TherapyParameters",
    "TherapyPersonaliser",
    "Trajectory",
    "UVAPadova",
    "VirtualPatients",
]
