"""executor-message's Prometheus metrics (names and labels as in deploy/grafana/metrics.txt)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds; a MESSAGE run lasts as long as its list takes at the session's pace.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass(frozen=True)
class ExecutorMetrics:
    """Runs by status, their duration, retries, and the consumer's backlog."""

    runs: Counter
    duration: Histogram
    retries: Counter
    pending: Gauge
    ack_pending: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ExecutorMetrics:
        """Create the metrics on a service's registry."""
        return cls(
            runs=Counter(
                "chronoflow_runs",
                "Finished run attempts by target and status",
                ["target", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "chronoflow_run_duration_seconds",
                "How long one attempt took, from start to its last send",
                ["target"],
                registry=registry,
                buckets=DURATION_BUCKETS,
            ),
            retries=Counter(
                "chronoflow_run_retries",
                "Attempts scheduled after a failed one",
                ["target"],
                registry=registry,
            ),
            pending=Gauge(
                "chronoflow_consumer_pending_messages",
                "Messages in the stream the consumer has not been given yet",
                ["consumer"],
                registry=registry,
            ),
            ack_pending=Gauge(
                "chronoflow_consumer_ack_pending_messages",
                "Messages given to the consumer and not acknowledged yet",
                ["consumer"],
                registry=registry,
            ),
        )
