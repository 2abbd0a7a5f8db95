"""The executor's Prometheus metrics, registered on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from chronoflow_executor_function.domain import TARGET
from chronoflow_executor_function.sandbox import Termination
from chronoflow_platform.executor.metrics import RunMetrics

_CPU_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class ExecutorMetrics:
    """What operators watch: how runs end, how long they take, how much JavaScript they run."""

    terminations: Counter
    runs: RunMetrics
    cpu: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ExecutorMetrics:
        """Create the metrics on ``registry``, every known label set starting at zero."""
        metrics = cls(
            terminations=Counter(
                "chronoflow_function_terminations",
                "Function runs by how the sandbox ended them (scheduled runs and tests)",
                ["reason"],
                registry=registry,
            ),
            runs=RunMetrics.register(
                registry,
                TARGET,
                duration_help="Duration of one attempt, sandbox start to end (host time included)",
            ),
            cpu=Histogram(
                "chronoflow_function_cpu_seconds",
                "Time one function run spent executing JavaScript (the CPU budget's measure)",
                buckets=_CPU_BUCKETS,
                registry=registry,
            ),
        )
        for termination in Termination:
            metrics.terminations.labels(termination.value)
        return metrics
