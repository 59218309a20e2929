"""Notebook entry points: ``load`` a run, ``compute_metrics``, ``compare`` arms with CIs."""

from recarena.analysis.compare import compare, estimate_interval, format_table
from recarena.analysis.load import RunLogs, load
from recarena.analysis.metrics import METRICS, compute_metrics, gini
from recarena.analysis.metrics_base import Metric

__all__ = [
    "METRICS",
    "Metric",
    "RunLogs",
    "compare",
    "compute_metrics",
    "estimate_interval",
    "format_table",
    "gini",
    "load",
]
