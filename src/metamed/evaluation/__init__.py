"""Evaluation as a protocol: metrics, statistics, the episodic protocol and benchmark runs."""

from metamed.evaluation.metrics import (
    auprc,
    auroc,
    binary_metrics,
    brier,
    calibration_slope_intercept,
    ece,
    mae,
    net_benefit,
    numeric_metrics,
    r2,
    rmse,
)
from metamed.evaluation.protocol import ProtocolConfig, ProtocolResult, episode_rng, run_protocol
from metamed.evaluation.statistics import (
    best_baseline,
    bootstrap_ci,
    paired_comparison,
    summarise,
    verdicts,
)

__all__ = [
    "ProtocolConfig",
    "ProtocolResult",
    "auprc",
    "auroc",
    "best_baseline",
    "binary_metrics",
    "bootstrap_ci",
    "brier",
    "calibration_slope_intercept",
    "ece",
    "episode_rng",
    "mae",
    "net_benefit",
    "numeric_metrics",
    "paired_comparison",
    "r2",
    "rmse",
    "run_protocol",
    "summarise",
    "verdicts",
]
