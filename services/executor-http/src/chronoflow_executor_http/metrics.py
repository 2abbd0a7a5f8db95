"""The executor's Prometheus metrics, registered on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronoflow_executor_http.domain import TARGET, Outcome
from chronoflow_platform.delivery import Delivery
from chronoflow_platform.executor.metrics import RunMetrics

_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# The (status class, outcome) pairs that can happen, so every series exists from the start.
_RESPONSE_SERIES = (
    ("2xx", Outcome.SUCCESS),
    ("3xx", Outcome.SUCCESS),
    ("1xx", Outcome.HTTP_ERROR),
    ("4xx", Outcome.HTTP_ERROR),
    ("5xx", Outcome.HTTP_ERROR),
    ("3xx", Outcome.HTTP_ERROR),
    ("none", Outcome.TIMEOUT),
    ("none", Outcome.CONNECTION_ERROR),
    ("none", Outcome.BLOCKED),
    ("none", Outcome.REJECTED),
)


@dataclass(frozen=True)
class ExecutorMetrics:
    """What operators watch: outcomes, durations, retries, load, backlog.

    Label lookups cost more than the increments themselves at thousands of runs per second,
    so the per-run paths use the children bound in :meth:`register` (the ``http_*`` fields).
    """

    responses: Counter
    runs: RunMetrics
    inflight: Gauge
    lateness: Histogram
    redeliveries: Counter
    pending: Gauge
    http_duration: Histogram = field(init=False)
    http_lateness: Histogram = field(init=False)
    http_redeliveries: Counter = field(init=False)
    http_pending: Gauge = field(init=False)
    _children: dict[tuple[str, ...], Counter] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        bind = object.__setattr__  # frozen: bound once, here
        bind(self, "http_duration", self.runs.target_duration)
        bind(self, "http_lateness", self.lateness.labels(TARGET))
        bind(self, "http_redeliveries", self.redeliveries.labels(TARGET))
        bind(self, "http_pending", self.pending.labels(TARGET))

    def response(self, status_class: str, outcome: Outcome) -> Counter:
        """The responses counter of one (status class, outcome)."""
        key = ("response", status_class, outcome.value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.responses.labels(status_class, outcome.value)
        return child

    def observe_delivery(self, delivery: Delivery) -> None:
        """The backlog as of this delivery, and whether it is a redelivery."""
        self.http_pending.set(delivery.pending)
        if delivery.number > 1:
            self.http_redeliveries.inc()

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ExecutorMetrics:
        """Create the metrics on ``registry``, every known label set starting at zero."""
        metrics = cls(
            responses=Counter(
                "chronoflow_http_responses",
                "Webhook attempts by response status class and outcome",
                ["status_class", "outcome"],
                registry=registry,
            ),
            runs=RunMetrics.register(
                registry,
                TARGET,
                duration_help="Duration of one attempt, request sent to response read",
            ),
            inflight=Gauge(
                "chronoflow_http_inflight_requests",
                "Webhook requests in flight in this process",
                registry=registry,
            ),
            lateness=Histogram(
                "chronoflow_run_lateness_seconds",
                "From an occurrence's scheduled instant to its first attempt starting",
                ["target"],
                buckets=_LATENESS_BUCKETS,
                registry=registry,
            ),
            redeliveries=Counter(
                "chronoflow_run_redeliveries",
                "Run requests delivered again (a replica crashed or gave the message back)",
                ["target"],
                registry=registry,
            ),
            pending=Gauge(
                "chronoflow_work_pending_messages",
                "Run requests waiting in the work queue, as of the last one fetched",
                ["target"],
                registry=registry,
            ),
        )
        for status_class, outcome in _RESPONSE_SERIES:
            metrics.response(status_class, outcome)
        return metrics
