"""Evaluation as a protocol: metrics, statistics, the episodic protocol and benchmark runs."""

from metamed.evaluation.bootstrap import ConfidenceInterval, bootstrap_ci, cell_rng
from metamed.evaluation.guard_record import guard_breaches, guard_record
from metamed.evaluation.metrics import (
    METRICS,
    Metric,
    auprc,
    auroc,
    binary_metrics,
    brier,
    calibration_slope_intercept,
    ece,
    get_metric,
    mae,
    metrics_for,
    net_benefit,
    numeric_metrics,
    r2,
    rmse,
    score,
)
from metamed.evaluation.protocol import ProtocolConfig, ProtocolResult, episode_rng, run_protocol
from metamed.evaluation.statistics import (
    best_baseline,
    paired_comparison,
    summarise,
    verdicts,
)

__all__ = [
    "METRICS",
    "ConfidenceInterval",
    "Metric",
    "ProtocolConfig",
    "ProtocolResult",
    "auprc",
    "auroc",
    "best_baseline",
    "binary_metrics",
    "bootstrap_ci",
    "brier",
    "calibration_slope_intercept",
    "cell_rng",
    "ece",
    "episode_rng",
    "get_metric",
    "guard_breaches",
    "guard_record",
    "mae",
    "metrics_for",
    "net_benefit",
    "numeric_metrics",
    "paired_comparison",
    "r2",
    "rmse",
    "run_protocol",
    "score",
    "summarise",
    "verdicts",
]
