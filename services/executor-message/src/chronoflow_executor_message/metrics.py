"""executor-message's Prometheus metrics (names and labels as in deploy/grafana/metrics.txt)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from chronoflow_executor_message.domain import TARGET
from chronoflow_platform.executor.metrics import RunMetrics

#: Seconds; a MESSAGE run lasts as long as its list takes at the session's pace.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass(frozen=True)
class ExecutorMetrics:
    """Runs by status, their duration and retries."""

    runs: RunMetrics

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ExecutorMetrics:
        """Create the metrics on a service's registry."""
        return cls(
            runs=RunMetrics.register(
                registry,
                TARGET,
                duration_help="How long one attempt took, from start to its last send",
                buckets=DURATION_BUCKETS,
            ),
        )
